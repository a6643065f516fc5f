//! A recipe's level over time as an SVG chart (plotters' SVG backend):
//! one point per finished run, oldest left, coloured like the badge of its
//! level, on a 0-8 scale; counted runs (releases, the default branch)
//! joined by a line, pull-request and `--quick` runs as hollow points.

use plotters::prelude::*;

use cc_ci_results::badge;

/// One point: the run's label (its date), its level, whether it counts.
#[derive(Debug, Clone)]
pub struct Point {
    /// Shown under the axis for some points: `12-07`.
    pub label: String,
    /// 0-8.
    pub level: u8,
    /// A counted run (release or default branch).
    pub counts: bool,
}

fn rgb(hex: &str) -> RGBColor {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

/// The chart, `width` x `height` pixels, as an SVG document; the caller
/// gives it a text alternative.
pub fn levels(points: &[Point], width: u32, height: u32) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let n = i32::try_from(points.len()).unwrap_or(i32::MAX).max(1);
        let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(28)
                .y_label_area_size(36)
                .build_cartesian_2d(-1..n, 0..9)?;
            chart
                .configure_mesh()
                .y_labels(9)
                .y_label_formatter(&|y| format!("{y}"))
                .x_labels(6)
                .x_label_formatter(&|x| {
                    usize::try_from(*x)
                        .ok()
                        .and_then(|i| points.get(i))
                        .map(|p| p.label.clone())
                        .unwrap_or_default()
                })
                .y_desc("level")
                .label_style(("sans-serif", 13).into_font().color(&RGBColor(0x33, 0x33, 0x33)))
                .light_line_style(RGBColor(0xee, 0xee, 0xee))
                .draw()?;
            let counted: Vec<(i32, i32)> = points
                .iter()
                .enumerate()
                .filter(|(_, p)| p.counts)
                .map(|(i, p)| (i as i32, i32::from(p.level)))
                .collect();
            chart.draw_series(LineSeries::new(counted, RGBColor(0x55, 0x55, 0x55).stroke_width(2)))?;
            chart.draw_series(points.iter().enumerate().map(|(i, p)| {
                let c = rgb(badge::colour(Some(p.level)));
                let style = if p.counts { c.filled() } else { c.stroke_width(2) };
                Circle::new((i as i32, i32::from(p.level)), 5, style)
            }))?;
            root.present()?;
            Ok(())
        };
        if let Err(e) = draw() {
            tracing::warn!("level chart: {e}");
        }
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_point_per_run_in_its_level_colour() {
        let points: Vec<Point> = (0..5)
            .map(|i| Point {
                label: format!("12-0{i}"),
                level: [7, 7, 2, 7, 8][i],
                counts: i != 2,
            })
            .collect();
        let s = levels(&points, 640, 240);
        assert!(s.starts_with("<svg"), "{s}");
        assert_eq!(s.matches("<circle").count(), 5, "{s}");
        // plotters writes colours in upper case.
        assert!(s.contains(&badge::LEVEL_COLOURS[2].to_uppercase()[1..]), "{s}");
        assert!(s.contains("<polyline"), "{s}");
    }
}
