//! Writing derived series in the Prometheus text exposition format (0.0.4).
//!
//! Label values come from spans (service and span names, attributes), so they are escaped
//! here; label names are fixed or sanitised from configured attribute names.

use std::fmt::Write as _;

use super::series::Histogram;

/// Writes the `# HELP` and `# TYPE` lines of a family.
pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes `{k="v",…}` (nothing for no labels), with `extra` appended last.
pub(crate) fn labels(out: &mut String, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().chain(extra.as_ref()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_into(out, value);
        out.push('"');
    }
    out.push('}');
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes one sample line.
pub(crate) fn sample(out: &mut String, name: &str, label_set: &[(&str, &str)], value: f64) {
    out.push_str(name);
    labels(out, label_set, None);
    let _ = writeln!(out, " {value}");
}

/// Writes the `_bucket`, `_sum` and `_count` lines of one histogram series.
pub(crate) fn histogram(
    out: &mut String,
    family: &str,
    label_set: &[(&str, &str)],
    bounds: &[f64],
    hist: &Histogram,
) {
    let mut cumulative = 0;
    let mut le = String::new();
    for (i, count) in hist.buckets().iter().enumerate() {
        cumulative += count;
        le.clear();
        match bounds.get(i) {
            Some(b) => {
                let _ = write!(le, "{b}");
            }
            None => le.push_str("+Inf"),
        }
        out.push_str(family);
        out.push_str("_bucket");
        labels(out, label_set, Some(("le", &le)));
        let _ = writeln!(out, " {cumulative}");
    }
    sample(out, &format!("{family}_sum"), label_set, hist.sum());
    out.push_str(family);
    out.push_str("_count");
    labels(out, label_set, None);
    let _ = writeln!(out, " {cumulative}");
}

/// A Prometheus label name for an attribute name: characters outside `[A-Za-z0-9_]` become
/// `_`, and a leading digit gets a `_` prefix (`http.request.method` → `http_request_method`).
pub(crate) fn label_name(attribute: &str) -> String {
    let mut name: String = attribute
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        let mut out = String::new();
        sample(&mut out, "m", &[("a", "x\"y\\z\nw")], 1.0);
        assert_eq!(out, "m{a=\"x\\\"y\\\\z\\nw\"} 1\n");
    }

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(label_name("http.request.method"), "http_request_method");
        assert_eq!(label_name("1st"), "_1st");
        assert_eq!(label_name("k8s-pod"), "k8s_pod");
    }

    #[test]
    fn histogram_lines_are_cumulative() {
        let bounds = [1.0, 2.5];
        let mut h = Histogram::new(&bounds);
        h.observe(&bounds, 0.5);
        h.observe(&bounds, 3.0);
        let mut out = String::new();
        histogram(&mut out, "d", &[("s", "x")], &bounds, &h);
        assert_eq!(
            out,
            "d_bucket{s=\"x\",le=\"1\"} 1\nd_bucket{s=\"x\",le=\"2.5\"} 1\n\
             d_bucket{s=\"x\",le=\"+Inf\"} 2\nd_sum{s=\"x\"} 3.5\nd_count{s=\"x\"} 2\n"
        );
    }
}
