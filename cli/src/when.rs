//! Parsing `--needed-by WHEN` in the local time zone: a date, a date and time, an RFC 3339
//! instant, `today`, `tomorrow`, a weekday, or `in N minutes|hours|days|weeks`. A bare date
//! means the end of that day.

use jiff::{Span, Timestamp, Zoned, civil};

/// Unix milliseconds, or a one-line reason.
pub fn parse_when(text: &str) -> Result<i64, String> {
    parse_at(text, &Zoned::now())
}

fn parse_at(text: &str, now: &Zoned) -> Result<i64, String> {
    let input = text.trim().to_lowercase();
    let unparsable = || {
        format!(
            "cannot understand the date {text:?}; try 2026-12-01, 2026-12-01T18:00, today, tomorrow, friday or \"in 3 days\""
        )
    };
    let end_of = |date: civil::Date| -> Result<Zoned, String> {
        date.at(23, 59, 59, 0)
            .to_zoned(now.time_zone().clone())
            .map_err(|_| unparsable())
    };
    let zoned = if input == "today" {
        end_of(now.date())?
    } else if input == "tomorrow" {
        end_of(now.date().tomorrow().map_err(|_| unparsable())?)?
    } else if let Some(weekday) = weekday(&input) {
        let mut date = now.date();
        for _ in 0..7 {
            date = date.tomorrow().map_err(|_| unparsable())?;
            if date.weekday() == weekday {
                break;
            }
        }
        end_of(date)?
    } else if let Some(rest) = input.strip_prefix("in ") {
        let span = relative(rest).ok_or_else(unparsable)?;
        now.checked_add(span).map_err(|_| unparsable())?
    } else if let Ok(instant) = input.to_uppercase().parse::<Timestamp>() {
        instant.to_zoned(now.time_zone().clone())
    } else if let Ok(datetime) = input.replace(' ', "T").parse::<civil::DateTime>() {
        if input.len() <= 10 {
            end_of(datetime.date())?
        } else {
            datetime
                .to_zoned(now.time_zone().clone())
                .map_err(|_| unparsable())?
        }
    } else if let Ok(date) = input.parse::<civil::Date>() {
        end_of(date)?
    } else {
        return Err(unparsable());
    };
    if zoned.timestamp() < now.timestamp() - Span::new().minutes(1) {
        return Err(format!("the date {text:?} is in the past"));
    }
    Ok(zoned.timestamp().as_millisecond())
}

fn weekday(text: &str) -> Option<civil::Weekday> {
    use civil::Weekday::*;
    Some(match text {
        "monday" | "mon" => Monday,
        "tuesday" | "tue" => Tuesday,
        "wednesday" | "wed" => Wednesday,
        "thursday" | "thu" => Thursday,
        "friday" | "fri" => Friday,
        "saturday" | "sat" => Saturday,
        "sunday" | "sun" => Sunday,
        _ => return None,
    })
}

fn relative(text: &str) -> Option<Span> {
    let mut parts = text.split_whitespace();
    let count: i64 = parts.next()?.parse().ok()?;
    if !(1..=3660).contains(&count) {
        return None;
    }
    let unit = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    Some(match unit {
        "minute" | "min" => Span::new().minutes(count),
        "hour" | "h" => Span::new().hours(count),
        "day" => Span::new().days(count),
        "week" => Span::new().weeks(count),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Zoned {
        "2026-11-22T10:00:00+00:00[UTC]".parse().unwrap()
    }

    fn at(text: &str) -> Result<String, String> {
        parse_at(text, &now()).map(|ms| Timestamp::from_millisecond(ms).unwrap().to_string())
    }

    #[test]
    fn understands_common_forms() {
        assert_eq!(at("today").unwrap(), "2026-11-22T23:59:59Z");
        assert_eq!(at("Tomorrow").unwrap(), "2026-11-23T23:59:59Z");
        // 2026-11-22 is a Sunday.
        assert_eq!(at("friday").unwrap(), "2026-11-27T23:59:59Z");
        assert_eq!(at("sunday").unwrap(), "2026-11-29T23:59:59Z");
        assert_eq!(at("in 3 days").unwrap(), "2026-11-25T10:00:00Z");
        assert_eq!(at("in 2 hours").unwrap(), "2026-11-22T12:00:00Z");
        assert_eq!(at("2026-12-01").unwrap(), "2026-12-01T23:59:59Z");
        assert_eq!(at("2026-12-01T18:00").unwrap(), "2026-12-01T18:00:00Z");
        assert_eq!(at("2026-12-01 18:00").unwrap(), "2026-12-01T18:00:00Z");
        assert_eq!(at("2026-12-01T18:00:00Z").unwrap(), "2026-12-01T18:00:00Z");
    }

    #[test]
    fn refuses_nonsense_and_the_past() {
        for bad in [
            "",
            "soon",
            "in x days",
            "in 3 fortnights",
            "2026-13-01",
            "2020-01-01",
            "in 0 days",
        ] {
            assert!(at(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
