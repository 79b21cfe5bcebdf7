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

/// The start of a time window: like [`parse_when`], but a bare day means its start.
pub fn parse_start(text: &str) -> Result<i64, String> {
    parse_start_at(text, &Zoned::now())
}

fn parse_start_at(text: &str, now: &Zoned) -> Result<i64, String> {
    let ms = parse_at(text, now)?;
    let zoned = Timestamp::from_millisecond(ms)
        .map_err(|e| e.to_string())?
        .to_zoned(now.time_zone().clone());
    if zoned.hour() == 23 && zoned.minute() == 59 && zoned.second() == 59 {
        let start = zoned
            .date()
            .to_zoned(now.time_zone().clone())
            .map_err(|e| e.to_string())?;
        return Ok(start
            .timestamp()
            .as_millisecond()
            .max(now.timestamp().as_millisecond()));
    }
    Ok(ms)
}

/// The deadline an urgency word implies when no --needed-by is given: the end of today,
/// the end of Sunday, or none.
pub fn horizon_deadline(word: &str) -> Result<Option<i64>, String> {
    horizon_deadline_at(word, &Zoned::now())
}

fn horizon_deadline_at(word: &str, now: &Zoned) -> Result<Option<i64>, String> {
    match word.trim().to_lowercase().replace(['-', '_'], " ").as_str() {
        "today" => parse_at("today", now).map(Some),
        "this week" | "week" => {
            if now.date().weekday() == civil::Weekday::Sunday {
                parse_at("today", now).map(Some)
            } else {
                parse_at("sunday", now).map(Some)
            }
        }
        "whenever" | "any time" | "anytime" => Ok(None),
        _ => Err(format!(
            "unknown urgency {word:?}; expected today, this-week or whenever"
        )),
    }
}

/// The most slots a recurring need may have (kith-core refuses more).
const MAX_SLOTS: usize = 62;

/// Expands a recurring need into slot times: every day of `days` (mon,wed,fri or daily)
/// for `length` (3w, 10d) from `from` (default today) at `at` (default 18:00), skipping
/// times already past.
pub fn expand_slots(
    days: &str,
    length: &str,
    from: Option<&str>,
    at: Option<&str>,
) -> Result<Vec<i64>, String> {
    expand_slots_at(days, length, from, at, &Zoned::now())
}

fn expand_slots_at(
    days: &str,
    length: &str,
    from: Option<&str>,
    at: Option<&str>,
    now: &Zoned,
) -> Result<Vec<i64>, String> {
    let weekdays: Vec<civil::Weekday> = match days.trim().to_lowercase().as_str() {
        "daily" | "day" | "every day" | "everyday" => {
            use civil::Weekday::*;
            vec![
                Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
            ]
        }
        "weekdays" => {
            use civil::Weekday::*;
            vec![Monday, Tuesday, Wednesday, Thursday, Friday]
        }
        list => list
            .split([',', ' ', '/'])
            .filter(|d| !d.is_empty())
            .map(|d| {
                weekday(d).ok_or_else(|| {
                    format!("unknown day {d:?} in --every; try mon,wed,fri, weekdays or daily")
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if weekdays.is_empty() {
        return Err("--every names no day; try mon,wed,fri".into());
    }
    let span = humantime::parse_duration(length.trim())
        .map_err(|e| format!("cannot understand --for {length:?} ({e}); try 3w or 10d"))?;
    let days_long = i64::try_from(span.as_secs() / 86_400).unwrap_or(i64::MAX);
    if !(1..=366).contains(&days_long) {
        return Err("--for must be between 1 day and a year".into());
    }
    let (hour, minute) = match at {
        None => (18, 0),
        Some(text) => parse_clock(text)?,
    };
    let first = match from {
        None => now.date(),
        Some(text) => Timestamp::from_millisecond(parse_start_at(text, now)?)
            .map_err(|e| e.to_string())?
            .to_zoned(now.time_zone().clone())
            .date(),
    };
    let mut slots = Vec::new();
    let mut date = first;
    for _ in 0..days_long {
        if weekdays.contains(&date.weekday()) {
            let when = date
                .at(hour, minute, 0, 0)
                .to_zoned(now.time_zone().clone())
                .map_err(|e| e.to_string())?;
            if when.timestamp() > now.timestamp() {
                slots.push(when.timestamp().as_millisecond());
            }
        }
        date = date.tomorrow().map_err(|e| e.to_string())?;
    }
    if slots.is_empty() {
        return Err(
            "the recurring need has no future slot; check --every, --for and --from".into(),
        );
    }
    if slots.len() > MAX_SLOTS {
        return Err(format!(
            "that makes {} slots; at most {MAX_SLOTS}: shorten --for or name fewer days",
            slots.len()
        ));
    }
    Ok(slots)
}

/// "18:00", "6pm", "9:30am".
fn parse_clock(text: &str) -> Result<(i8, i8), String> {
    let bad = || format!("cannot understand the time {text:?}; try 18:00");
    let t = text.trim().to_lowercase();
    let (body, offset) = if let Some(b) = t.strip_suffix("pm") {
        (b.trim(), 12)
    } else if let Some(b) = t.strip_suffix("am") {
        (b.trim(), 0)
    } else {
        (t.as_str(), 0)
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h, m),
        None => (body, "0"),
    };
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    let h = if offset == 12 && h < 12 {
        h + 12
    } else if offset == 0 && t.ends_with("am") && h == 12 {
        0
    } else {
        h
    };
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok((h, m))
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
    fn recurring_needs_expand_into_slots() {
        // 2026-11-22 (a Sunday) 10:00 UTC: three weeks of Mon/Wed/Fri at 18:00.
        let slots = expand_slots_at("mon,wed,fri", "3w", None, None, &now()).unwrap();
        assert_eq!(slots.len(), 9);
        let first = Timestamp::from_millisecond(slots[0]).unwrap().to_string();
        assert_eq!(first, "2026-11-23T18:00:00Z");
        let daily = expand_slots_at("daily", "2d", None, Some("9am"), &now()).unwrap();
        // Today's 09:00 has passed: only tomorrow's.
        assert_eq!(daily.len(), 1);
        assert!(expand_slots_at("funday", "3w", None, None, &now()).is_err());
        assert!(expand_slots_at("mon", "soon", None, None, &now()).is_err());
        assert!(expand_slots_at("daily", "365d", None, None, &now()).is_err());
        assert!(expand_slots_at("mon", "3w", None, Some("25:00"), &now()).is_err());
    }

    #[test]
    fn urgency_words_set_a_deadline() {
        let day = horizon_deadline_at("today", &now()).unwrap().unwrap();
        assert_eq!(
            Timestamp::from_millisecond(day).unwrap().to_string(),
            "2026-11-22T23:59:59Z"
        );
        assert!(horizon_deadline_at("this-week", &now()).unwrap().is_some());
        assert_eq!(horizon_deadline_at("whenever", &now()).unwrap(), None);
        assert!(horizon_deadline_at("asap", &now()).is_err());
        let start = parse_start_at("2026-12-01", &now()).unwrap();
        assert_eq!(
            Timestamp::from_millisecond(start).unwrap().to_string(),
            "2026-12-01T00:00:00Z"
        );
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
