//! Charts drawn on the server as SVG. Nothing runs in the browser, so they work under the
//! dashboard's strict CSP with no chart library to keep up to date; their colours are CSS
//! classes of the dashboard's stylesheet, so dark mode follows the page; each bar carries a
//! `<title>` with its numbers, and the page repeats them in a table.

use std::fmt::Write as _;

use minijinja::HtmlEscape;

/// One bar: its stacked values (in the order of the chart's series), the label under it
/// (empty for none), and the text of its `<title>`.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Below the bar; most bars leave it empty so the labels do not crowd.
    pub label: String,
    /// The stacked values, bottom first.
    pub values: Vec<i64>,
    /// What a pointer or a screen reader gets for this bar.
    pub title: String,
}

const HEIGHT: i64 = 120;
const SLOT: i64 = 16;
const BAR: i64 = 12;
const LEFT: i64 = 36;
const BOTTOM: i64 = 18;

/// A bar chart of stacked values; `series` names the CSS class of each stacked value
/// (`chart-solved`, …), `label` is its accessible name.
pub fn stacked_bars(label: &str, series: &[&str], bars: &[Bar]) -> String {
    let most = bars
        .iter()
        .map(|bar| bar.values.iter().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let width = LEFT + SLOT * i64::try_from(bars.len()).unwrap_or(0) + 4;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {width} {}\" role=\"img\" aria-label=\"{}\" \
         preserveAspectRatio=\"xMinYMin meet\"><title>{}</title>",
        HEIGHT + BOTTOM,
        HtmlEscape(label),
        HtmlEscape(label),
    );
    // The axis: zero and the largest value.
    let _ = write!(
        svg,
        "<line class=\"chart-axis\" x1=\"{LEFT}\" y1=\"{HEIGHT}\" x2=\"{width}\" y2=\"{HEIGHT}\"/>\
         <text class=\"chart-tick\" x=\"{}\" y=\"{HEIGHT}\" text-anchor=\"end\">0</text>\
         <text class=\"chart-tick\" x=\"{}\" y=\"10\" text-anchor=\"end\">{most}</text>",
        LEFT - 4,
        LEFT - 4,
    );
    for (index, bar) in bars.iter().enumerate() {
        let x = LEFT + SLOT * i64::try_from(index).unwrap_or(0) + (SLOT - BAR) / 2;
        let _ = write!(svg, "<g><title>{}</title>", HtmlEscape(&bar.title));
        let mut base = HEIGHT;
        for (value, class) in bar.values.iter().zip(series) {
            let height = value * (HEIGHT - 12) / most;
            if height > 0 {
                base -= height;
                let _ = write!(
                    svg,
                    "<rect class=\"{class}\" x=\"{x}\" y=\"{base}\" width=\"{BAR}\" height=\"{height}\"/>"
                );
            }
        }
        // An empty slot still answers to a pointer with its title.
        let _ = write!(
            svg,
            "<rect class=\"chart-hit\" x=\"{x}\" y=\"0\" width=\"{BAR}\" height=\"{HEIGHT}\"/>"
        );
        if !bar.label.is_empty() {
            let _ = write!(
                svg,
                "<text class=\"chart-tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + BAR / 2,
                HEIGHT + 13,
                HtmlEscape(&bar.label)
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// A small bar chart of a few values in a table cell; `label` is its accessible name (the
/// numbers, so a screen reader gets them all).
pub fn sparkline(label: &str, values: &[i64]) -> String {
    let most = values.iter().copied().max().unwrap_or(0).max(1);
    let width = 6 * i64::try_from(values.len()).unwrap_or(0);
    let mut svg = format!(
        "<svg class=\"sparkline\" viewBox=\"0 0 {width} 20\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        HtmlEscape(label),
        HtmlEscape(label),
    );
    for (index, value) in values.iter().enumerate() {
        let height = (value * 20 / most).max(i64::from(*value > 0));
        let x = 6 * i64::try_from(index).unwrap_or(0);
        let _ = write!(
            svg,
            "<rect class=\"chart-solved\" x=\"{x}\" y=\"{}\" width=\"4\" height=\"{height}\"/>",
            20 - height
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_largest_titled_and_escaped() {
        let bars = [
            Bar {
                label: "Mo".into(),
                values: vec![10, 5],
                title: "Monday: 15 <starts>".into(),
            },
            Bar {
                label: String::new(),
                values: vec![0, 0],
                title: "Tuesday: none".into(),
            },
        ];
        let svg = stacked_bars("Starts & outcomes", &["a", "b"], &bars);
        assert!(svg.starts_with("<svg class=\"chart\""));
        assert!(svg.contains("aria-label=\"Starts &amp; outcomes\""));
        assert!(svg.contains("<title>Monday: 15 &lt;starts&gt;</title>"));
        assert!(
            svg.contains(">15</text>"),
            "the axis names the largest total"
        );
        assert_eq!(svg.matches("class=\"a\"").count(), 1);
        assert_eq!(svg.matches("class=\"chart-hit\"").count(), 2);
        assert!(svg.contains("<title>Tuesday: none</title>"));
    }
}
