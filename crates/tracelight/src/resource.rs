//! The OpenTelemetry resource: who is emitting the spans.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;

use crate::config::Config;

/// Builds the resource from the effective configuration.
///
/// Attributes: `service.name`, `service.version` (when known), `service.instance.id` (random per
/// process, so restarts are distinguishable), `host.name`, `process.pid`, the `telemetry.sdk.*`
/// triple, then `OTEL_RESOURCE_ATTRIBUTES` and code attributes. The process environment is not
/// read here: everything comes from `cfg`.
pub(crate) fn build(cfg: &Config) -> Resource {
    let mut attrs = Vec::with_capacity(5 + cfg.resource_attributes.len());
    attrs.push(KeyValue::new("service.instance.id", instance_id()));
    if let Some(host) = host_name() {
        attrs.push(KeyValue::new("host.name", host));
    }
    attrs.push(KeyValue::new("process.pid", i64::from(std::process::id())));
    for (k, v) in &cfg.resource_attributes {
        attrs.push(KeyValue::new(k.clone(), v.clone()));
    }
    if let Some(version) = &cfg.service_version {
        attrs.push(KeyValue::new("service.version", version.clone()));
    }
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attrs)
        .with_service_name(cfg.service_name.clone())
        .build()
}

/// A random UUID v4 in its canonical text form.
fn instance_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = |s: &[u8]| s.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        hex(&b[0..4]),
        hex(&b[4..6]),
        hex(&b[6..8]),
        hex(&b[8..10]),
        hex(&b[10..16])
    )
}

fn host_name() -> Option<String> {
    gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CodeSettings;
    use opentelemetry::Key;

    #[test]
    fn resource_carries_identity_and_user_attributes() {
        let code = CodeSettings {
            service_name: Some("orders".to_owned()),
            service_version: Some("1.4.0".to_owned()),
            ..CodeSettings::default()
        };
        let env = [("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")];
        let cfg = Config::resolve(code, &env).unwrap();
        let res = build(&cfg);
        let get = |k: &'static str| res.get(&Key::from_static_str(k)).map(|v| v.to_string());
        assert_eq!(get("service.name").as_deref(), Some("orders"));
        assert_eq!(get("service.version").as_deref(), Some("1.4.0"));
        assert_eq!(get("deployment.environment").as_deref(), Some("staging"));
        assert_eq!(get("telemetry.sdk.language").as_deref(), Some("rust"));
        assert_eq!(get("process.pid"), Some(std::process::id().to_string()));
        let id = get("service.instance.id").unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(get("host.name").is_some());
    }
}
