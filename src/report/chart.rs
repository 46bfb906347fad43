//! Charts as inline SVG geometry, for the report and the dashboard's pages: numbers in, the
//! coordinates a template writes as presentation attributes out (no script, no inline style).

use crate::ownership::TrendPoint;

/// Height of one bar and the gap under it, in SVG user units.
pub const BAR_HEIGHT: u32 = 22;
const BAR_GAP: u32 = 6;
/// Width of the bars' area, right of the labels.
pub const BAR_AREA: u32 = 480;

/// One bar: danger then warning, side by side.
pub struct Bar {
    pub label: String,
    /// The page this bar is about, when there is one.
    pub href: Option<String>,
    pub y: u32,
    pub danger_width: u32,
    pub warning_width: u32,
    pub danger: u64,
    pub warning: u64,
}

pub struct BarChart {
    pub bars: Vec<Bar>,
    pub height: u32,
}

/// Bars for at most `most` items `(label, danger, warning, href)`, scaled to the widest.
pub fn bars(items: Vec<(String, u64, u64, Option<String>)>, most: usize) -> BarChart {
    let items: Vec<_> = items.into_iter().take(most).collect();
    let widest = items
        .iter()
        .map(|(_, d, w, _)| d + w)
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = |n: u64| ((n * u64::from(BAR_AREA)) / widest) as u32;
    let bars: Vec<Bar> = items
        .into_iter()
        .enumerate()
        .map(|(i, (label, danger, warning, href))| Bar {
            label,
            href,
            y: i as u32 * (BAR_HEIGHT + BAR_GAP),
            danger_width: scale(danger),
            warning_width: scale(warning),
            danger,
            warning,
        })
        .collect();
    BarChart {
        height: bars.len() as u32 * (BAR_HEIGHT + BAR_GAP),
        bars,
    }
}

/// A horizontal grid line and its value.
pub struct Tick {
    pub y: u32,
    pub label: u64,
}

/// Two lines (danger, warning) over days.
pub struct LineChart {
    pub width: u32,
    pub height: u32,
    /// `x,y x,y …` for a `<polyline points>`.
    pub danger: String,
    pub warning: String,
    pub ticks: Vec<Tick>,
    pub first_day: String,
    pub last_day: String,
    pub days: usize,
}

/// The plot's box inside the chart.
const LEFT: u32 = 44;
const TOP: u32 = 10;
const PLOT_WIDTH: u32 = 640;
const PLOT_HEIGHT: u32 = 160;

/// `YYYY-MM-DD` of the day a trend point closes.
pub fn day_of(day_end_ms: i64) -> String {
    let day = time::OffsetDateTime::from_unix_timestamp((day_end_ms - 1).div_euclid(1000))
        .map(|t| t.date());
    match day {
        Ok(d) => format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()),
        Err(_) => String::new(),
    }
}

/// A rounded top for the axis: 1, 2 or 5 times a power of ten, at least `max`.
fn nice_ceiling(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= max {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

pub fn trend(points: &[TrendPoint]) -> LineChart {
    let top = nice_ceiling(
        points
            .iter()
            .map(|p| p.danger.max(p.warning))
            .max()
            .unwrap_or(0)
            .max(1),
    );
    let n = points.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            LEFT + PLOT_WIDTH / 2
        } else {
            LEFT + (i as u64 * u64::from(PLOT_WIDTH) / (n as u64 - 1)) as u32
        }
    };
    let y = |v: u64| TOP + PLOT_HEIGHT - (v.min(top) * u64::from(PLOT_HEIGHT) / top) as u32;
    let line = |pick: fn(&TrendPoint) -> u64| {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{},{}", x(i), y(pick(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    LineChart {
        width: LEFT + PLOT_WIDTH + 16,
        height: TOP + PLOT_HEIGHT + 26,
        danger: line(|p| p.danger),
        warning: line(|p| p.warning),
        ticks: [0, top / 2, top]
            .into_iter()
            .map(|v| Tick { y: y(v), label: v })
            .collect(),
        first_day: points
            .first()
            .map(|p| day_of(p.day_end_ms))
            .unwrap_or_default(),
        last_day: points
            .last()
            .map(|p| day_of(p.day_end_ms))
            .unwrap_or_default(),
        days: points.len(),
    }
}

impl LineChart {
    pub fn left(&self) -> u32 {
        LEFT
    }

    pub fn right(&self) -> u32 {
        LEFT + PLOT_WIDTH
    }

    pub fn bottom(&self) -> u32 {
        TOP + PLOT_HEIGHT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_widest() {
        let chart = bars(
            vec![
                ("a".into(), 30, 10, None),
                ("b".into(), 0, 20, None),
                ("c".into(), 1, 1, None),
            ],
            2,
        );
        assert_eq!(chart.bars.len(), 2);
        assert_eq!(
            chart.bars[0].danger_width + chart.bars[0].warning_width,
            BAR_AREA
        );
        assert_eq!(chart.bars[1].warning_width, BAR_AREA / 2);
        assert_eq!(chart.height, 2 * (BAR_HEIGHT + BAR_GAP));
    }

    #[test]
    fn a_trend_spans_the_plot_with_a_round_top() {
        let day = 86_400_000;
        let points: Vec<TrendPoint> = (1..=3)
            .map(|d| TrendPoint {
                day_end_ms: d * day,
                danger: 7 * d as u64,
                warning: 3,
            })
            .collect();
        let chart = trend(&points);
        assert_eq!(chart.ticks.last().map(|t| t.label), Some(50));
        assert!(chart.danger.starts_with(&format!("{LEFT},")));
        assert!(chart.danger.contains(&format!("{},", LEFT + PLOT_WIDTH)));
        assert_eq!(
            (chart.first_day.as_str(), chart.last_day.as_str()),
            ("1970-01-01", "1970-01-03")
        );
        assert_eq!(nice_ceiling(101), 200);
    }
}
