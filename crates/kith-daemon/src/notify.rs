//! Desktop notifications that stay discreet: by default a notification says only "Kith / New
//! activity", because the screen may be seen by the very person a member is hiding from. Names
//! and text appear only when the member opted in to detail. Quiet hours hold notifications and
//! show them as one when they end.
//!
//! Where they go: `KITH_NOTIFY_FILE` (a file, for tests and scripts) wins over the desktop
//! (D-Bus, only when a session bus exists); with neither, notifications are off.

// The node wires this module in next; until then only the tests use it.

use std::{
    ffi::OsString,
    fmt, fs,
    io::{self, Read, Write},
    path::{Path, PathBuf},
    str::FromStr,
};

use serde::{Deserialize, Serialize};

/// The only title a discreet notification has.
pub(crate) const DISCREET_TITLE: &str = "Kith";
/// The only body a discreet notification has.
pub(crate) const DISCREET_BODY: &str = "New activity";
/// Notices held during quiet hours; later ones are only counted, so memory stays bounded.
pub(crate) const MAX_HELD: usize = 50;
/// How many held notices are shown one by one, in detail mode, when quiet hours end.
const FLUSH_SHOWN: usize = 5;
/// Environment variable naming a file that receives notifications instead of the desktop.
pub(crate) const NOTIFY_FILE_ENV: &str = "KITH_NOTIFY_FILE";
/// Without it there is no desktop session to notify.
const DBUS_SESSION_ENV: &str = "DBUS_SESSION_BUS_ADDRESS";
/// Settings file inside the home.
pub(crate) const SETTINGS_FILE: &str = "notify.json";
const SETTINGS_TMP: &str = "notify.json.tmp";
/// The settings are tiny; anything bigger is not ours and is ignored.
const MAX_SETTINGS_BYTES: u64 = 4 * 1024;
/// A notification is a glance, not a message: longer detail is cut.
const MAX_TEXT_CHARS: usize = 200;
const MINUTES_PER_DAY: u16 = 24 * 60;

/// What happened, without who or what: each kind's summary is safe to show in detail mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoticeKind {
    /// Someone in a circle asked for help urgently.
    UrgentRequest,
    /// Someone offered to help with your request.
    ClaimOnYourRequest,
    /// A reminder about something still open.
    Nudge,
    /// Someone else took the request you offered to help with.
    LostRace,
    /// A request was closed.
    RequestClosed,
    /// Someone accepted your offer.
    Accepted,
}

impl NoticeKind {
    /// One line, no names: the title of a notification in detail mode.
    pub(crate) fn summary(self) -> &'static str {
        match self {
            NoticeKind::UrgentRequest => "Urgent request",
            NoticeKind::ClaimOnYourRequest => "Someone offered to help",
            NoticeKind::Nudge => "Reminder",
            NoticeKind::LostRace => "Someone else is helping",
            NoticeKind::RequestClosed => "Request closed",
            NoticeKind::Accepted => "Your offer was accepted",
        }
    }
}

/// One thing to tell the member about.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) kind: NoticeKind,
    /// Shown only in detail mode, e.g. "Ann needs a ride today".
    pub(crate) detail: String,
}

impl Notice {
    pub(crate) fn new(kind: NoticeKind, detail: impl Into<String>) -> Notice {
        Notice {
            kind,
            detail: detail.into(),
        }
    }
}

/// Debug output may reach logs, so it never carries the detail text.
impl fmt::Debug for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notice")
            .field("kind", &self.kind)
            .field("detail", &format_args!("<{} bytes>", self.detail.len()))
            .finish()
    }
}

/// A daily window, in minutes after local midnight, during which notifications wait.
/// `start == end` is refused (it would mean either never or always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuietHours {
    start: u16,
    end: u16,
}

/// Why quiet hours could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QuietHoursError {
    #[error("quiet hours look like 22:00-07:00 (start-end, 24-hour clock)")]
    Format,
    #[error("the start of the quiet hours is not a time of day (00:00 to 23:59)")]
    Start,
    #[error("the end of the quiet hours is not a time of day (00:00 to 23:59)")]
    End,
    #[error("quiet hours must start and end at different times")]
    Empty,
}

impl QuietHours {
    /// Both ends in minutes after midnight (0..1440), different from each other.
    pub(crate) fn new(start: u16, end: u16) -> Result<QuietHours, QuietHoursError> {
        if start >= MINUTES_PER_DAY {
            return Err(QuietHoursError::Start);
        }
        if end >= MINUTES_PER_DAY {
            return Err(QuietHoursError::End);
        }
        if start == end {
            return Err(QuietHoursError::Empty);
        }
        Ok(QuietHours { start, end })
    }

    #[cfg(test)]
    pub(crate) fn start(self) -> u16 {
        self.start
    }

    #[cfg(test)]
    pub(crate) fn end(self) -> u16 {
        self.end
    }

    /// Whether `minute_of_day` falls in the window: start included, end excluded, wrapping
    /// past midnight when `end < start`.
    pub(crate) fn contains(self, minute_of_day: u16) -> bool {
        let m = minute_of_day % MINUTES_PER_DAY;
        if self.start < self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }
}

impl FromStr for QuietHours {
    type Err = QuietHoursError;

    /// "22:00-07:00", or hours alone as in "22-7"; spaces around each time are allowed.
    fn from_str(s: &str) -> Result<QuietHours, QuietHoursError> {
        let (start, end) = s.split_once('-').ok_or(QuietHoursError::Format)?;
        let start = parse_time_of_day(start).ok_or(QuietHoursError::Start)?;
        let end = parse_time_of_day(end).ok_or(QuietHoursError::End)?;
        QuietHours::new(start, end)
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// "H", "HH", "H:MM" or "HH:MM" (ASCII digits only) to minutes after midnight.
fn parse_time_of_day(s: &str) -> Option<u16> {
    let s = s.trim();
    let (hour, minute) = match s.split_once(':') {
        Some((hour, minute)) => (hour, Some(minute)),
        None => (s, None),
    };
    let hour = parse_digits(hour, 2)?;
    let minute = match minute {
        None => 0,
        Some(m) if m.len() == 2 => parse_digits(m, 2)?,
        Some(_) => return None,
    };
    (hour < 24 && minute < 60).then_some(hour * 60 + minute)
}

/// Up to `max_len` ASCII digits; `u16::from_str` alone would also take a leading '+'.
fn parse_digits(s: &str, max_len: usize) -> Option<u16> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The minute of the day on this machine's clock, in its time zone (UTC if that is unknown):
/// quiet hours are the member's local night.
pub(crate) fn local_minute_now() -> u16 {
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    let now = jiff::Timestamp::now().to_zoned(tz);
    let hour = u16::try_from(now.hour()).unwrap_or(0);
    let minute = u16::try_from(now.minute()).unwrap_or(0);
    (hour * 60 + minute).min(MINUTES_PER_DAY - 1)
}

/// Why a notification was not shown. Messages carry no notification text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    #[error("cannot write the notification file: {0}")]
    File(#[from] io::Error),
    #[error("the desktop is not taking notifications")]
    Desktop,
    #[error("the desktop has not answered earlier notifications")]
    Busy,
}

/// Somewhere to show a notification. `show` must not block for long: the node calls it.
pub(crate) trait Notifier: Send {
    fn show(&mut self, title: &str, body: &str) -> Result<(), NotifyError>;

    /// Where notifications go, as the control socket reports it: "desktop", "file", ...
    fn sink(&self) -> &'static str;
}

/// Text fit for one line: control characters (tabs, newlines) become spaces, and it is cut
/// to a glance.
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_TEXT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(MAX_TEXT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Appends `title\tbody\n` to a file: for tests and scripts, and for people who want to route
/// notifications themselves.
#[derive(Debug)]
pub(crate) struct FileNotifier {
    path: PathBuf,
}

impl FileNotifier {
    pub(crate) fn new(path: PathBuf) -> FileNotifier {
        FileNotifier { path }
    }
}

impl Notifier for FileNotifier {
    fn show(&mut self, title: &str, body: &str) -> Result<(), NotifyError> {
        let mut options = fs::OpenOptions::new();
        options.append(true).create(true);
        // Detail text can name people: a new file is readable by its owner only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path)?;
        let line = format!("{}\t{}\n", one_line(title), one_line(body));
        // One write of one short line, so concurrent appenders do not interleave.
        file.write_all(line.as_bytes())?;
        Ok(())
    }

    fn sink(&self) -> &'static str {
        "file"
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
pub(crate) use desktop::DesktopNotifier;

#[cfg(all(unix, not(target_os = "macos")))]
mod desktop {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };

    use super::{DISCREET_TITLE, Notifier, NotifyError};

    /// Sends still waiting for D-Bus beyond which new ones are dropped, so a stuck desktop
    /// cannot pile up tasks.
    const MAX_IN_FLIGHT: usize = 4;

    /// Freedesktop notifications over D-Bus (zbus on the daemon's own tokio runtime). Sending
    /// happens in a background task: `show` never waits for the desktop.
    #[derive(Debug, Default)]
    pub(crate) struct DesktopNotifier {
        in_flight: Arc<AtomicUsize>,
        warned: Arc<AtomicBool>,
    }

    impl DesktopNotifier {
        pub(crate) fn new() -> DesktopNotifier {
            DesktopNotifier::default()
        }
    }

    /// Counts one send in flight until dropped, whichever way the send ends.
    struct InFlight(Arc<AtomicUsize>);

    impl InFlight {
        fn start(counter: &Arc<AtomicUsize>) -> InFlight {
            counter.fetch_add(1, Ordering::AcqRel);
            InFlight(Arc::clone(counter))
        }
    }

    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// One warning, then debug: a desktop without a notification server would otherwise
    /// fill the log. Never the notification's text.
    fn report(warned: &AtomicBool, error: &notify_rust::error::Error) {
        if warned.swap(true, Ordering::AcqRel) {
            tracing::debug!(%error, "a desktop notification was not shown");
        } else {
            tracing::warn!("desktop notifications are not being shown");
            tracing::debug!(%error, "a desktop notification was not shown");
        }
    }

    /// The body is markup for most notification servers: escape it so text shows as text.
    fn escape_markup(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                c => out.push(c),
            }
        }
        out
    }

    impl Notifier for DesktopNotifier {
        fn show(&mut self, title: &str, body: &str) -> Result<(), NotifyError> {
            if self.in_flight.load(Ordering::Acquire) >= MAX_IN_FLIGHT {
                return Err(NotifyError::Busy);
            }
            let mut notification = notify_rust::Notification::new();
            notification
                .appname(DISCREET_TITLE)
                .summary(title)
                .body(&escape_markup(body))
                // Kept out of the desktop's notification history.
                .hint(notify_rust::Hint::Transient(true));
            let guard = InFlight::start(&self.in_flight);
            let warned = Arc::clone(&self.warned);
            match tokio::runtime::Handle::try_current() {
                // notify-rust's blocking `show` would start a runtime inside ours and panic.
                Ok(runtime) => {
                    runtime.spawn(async move {
                        let _guard = guard;
                        if let Err(error) = notification.show_async().await {
                            report(&warned, &error);
                        }
                    });
                    Ok(())
                }
                // Outside a runtime: the blocking call, on a thread of its own.
                Err(_) => std::thread::Builder::new()
                    .name("kith-notify".into())
                    .spawn(move || {
                        let _guard = guard;
                        if let Err(error) = notification.show() {
                            report(&warned, &error);
                        }
                    })
                    .map(drop)
                    .map_err(|_| NotifyError::Desktop),
            }
        }

        fn sink(&self) -> &'static str {
            "desktop"
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn markup_is_escaped() {
            assert_eq!(
                escape_markup("<b>A & B</b>"),
                "&lt;b&gt;A &amp; B&lt;/b&gt;"
            );
        }

        #[test]
        fn a_stuck_desktop_refuses_more_sends() {
            let mut desktop = DesktopNotifier::new();
            let held: Vec<_> = (0..MAX_IN_FLIGHT)
                .map(|_| InFlight::start(&desktop.in_flight))
                .collect();
            assert!(matches!(desktop.show("t", "b"), Err(NotifyError::Busy)));
            drop(held);
            assert_eq!(desktop.in_flight.load(Ordering::Acquire), 0);
        }
    }
}

/// Where notifications go, chosen from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    /// `KITH_NOTIFY_FILE` names a file.
    File(PathBuf),
    /// A desktop session bus exists.
    Desktop,
    /// Neither: notifications are silently off.
    Off,
}

impl Backend {
    /// File first (tests and scripts must never reach a real desktop), then the desktop
    /// when `DBUS_SESSION_BUS_ADDRESS` is set and non-empty, else off. `env` reads one
    /// variable, so tests need not touch the process environment.
    pub(crate) fn choose(env: impl Fn(&str) -> Option<OsString>) -> Backend {
        if let Some(path) = env(NOTIFY_FILE_ENV).filter(|v| !v.is_empty()) {
            return Backend::File(PathBuf::from(path));
        }
        if cfg!(all(unix, not(target_os = "macos")))
            && env(DBUS_SESSION_ENV).is_some_and(|v| !v.is_empty())
        {
            return Backend::Desktop;
        }
        Backend::Off
    }

    fn build(self) -> Option<Box<dyn Notifier>> {
        match self {
            Backend::File(path) => Some(Box::new(FileNotifier::new(path))),
            #[cfg(all(unix, not(target_os = "macos")))]
            Backend::Desktop => Some(Box::new(DesktopNotifier::new())),
            #[cfg(not(all(unix, not(target_os = "macos"))))]
            Backend::Desktop => None,
            Backend::Off => None,
        }
    }
}

/// The member's notification state: where they go, how much they say, and what waits for the
/// end of quiet hours.
pub(crate) struct Notifications {
    notifier: Option<Box<dyn Notifier>>,
    detail: bool,
    quiet: Option<QuietHours>,
    /// Waiting for quiet hours to end, at most [`MAX_HELD`].
    held: Vec<Notice>,
    /// Held beyond [`MAX_HELD`]: only counted.
    overflow: usize,
    /// A failure was already logged at warn level.
    warned: bool,
}

/// Counts only: held notices carry detail text.
impl fmt::Debug for Notifications {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifications")
            .field("sink", &self.sink())
            .field("detail", &self.detail)
            .field("quiet", &self.quiet)
            .field("held", &self.held_count())
            .finish_non_exhaustive()
    }
}

impl Notifications {
    /// Chooses the backend from the process environment (see [`Backend::choose`]).
    pub(crate) fn from_env(detail: bool, quiet: Option<QuietHours>) -> Notifications {
        Notifications::from_env_with(|name| std::env::var_os(name), detail, quiet)
    }

    /// As [`Notifications::from_env`], reading variables through `env`.
    pub(crate) fn from_env_with(
        env: impl Fn(&str) -> Option<OsString>,
        detail: bool,
        quiet: Option<QuietHours>,
    ) -> Notifications {
        Notifications::with_notifier(Backend::choose(env).build(), detail, quiet)
    }

    /// With a given notifier, or none for off.
    pub(crate) fn with_notifier(
        notifier: Option<Box<dyn Notifier>>,
        detail: bool,
        quiet: Option<QuietHours>,
    ) -> Notifications {
        Notifications {
            notifier,
            detail,
            quiet,
            held: Vec::new(),
            overflow: 0,
            warned: false,
        }
    }

    /// Whether notifications go anywhere.
    #[cfg(test)]
    pub(crate) fn is_on(&self) -> bool {
        self.notifier.is_some()
    }

    /// Where notifications go: "desktop", "file" or "off".
    pub(crate) fn sink(&self) -> &'static str {
        self.notifier.as_ref().map_or("off", |n| n.sink())
    }

    /// Turning detail off also forgets the detail of what is held: it will never be shown.
    pub(crate) fn set_detail(&mut self, detail: bool) {
        self.detail = detail;
        if !detail {
            for notice in &mut self.held {
                notice.detail.clear();
            }
        }
    }

    /// Takes effect from the next `notify` or `flush`.
    pub(crate) fn set_quiet(&mut self, quiet: Option<QuietHours>) {
        self.quiet = quiet;
    }

    /// Notices waiting for quiet hours to end, counted ones included.
    pub(crate) fn held_count(&self) -> usize {
        self.held.len().saturating_add(self.overflow)
    }

    fn is_quiet(&self, local_minute: u16) -> bool {
        self.quiet.is_some_and(|q| q.contains(local_minute))
    }

    /// Shows `notice` now, or holds it while `local_minute` is in quiet hours.
    pub(crate) fn notify(&mut self, notice: Notice, local_minute: u16) {
        if self.notifier.is_none() {
            return;
        }
        if self.is_quiet(local_minute) || self.held_count() > 0 {
            self.hold(notice);
            // Outside quiet hours with notices still held: show them together with this one.
            self.flush(local_minute);
        } else {
            self.show_notice(&notice);
        }
    }

    fn hold(&mut self, mut notice: Notice) {
        if self.held.len() < MAX_HELD {
            if !self.detail {
                // Never shown in discreet mode: not worth keeping in memory.
                notice.detail.clear();
            }
            self.held.push(notice);
        } else {
            self.overflow = self.overflow.saturating_add(1);
        }
    }

    /// Once quiet hours are over, shows what was held: one "New activity (N)" in discreet
    /// mode, each notice in detail mode. The node calls this every minute or so.
    pub(crate) fn flush(&mut self, local_minute: u16) {
        if self.is_quiet(local_minute) || self.held_count() == 0 {
            return;
        }
        let total = self.held_count();
        let held = std::mem::take(&mut self.held);
        self.overflow = 0;
        if self.detail {
            // A morning of pop-ups helps nobody: the first few, then a count.
            for notice in held.iter().take(FLUSH_SHOWN) {
                self.show_notice(notice);
            }
            let more = total.saturating_sub(FLUSH_SHOWN.min(held.len()));
            if more > 0 {
                self.show(DISCREET_TITLE, &format!("{DISCREET_BODY} ({more} more)"));
            }
        } else {
            self.show(DISCREET_TITLE, &format!("{DISCREET_BODY} ({total})"));
        }
    }

    fn show_notice(&mut self, notice: &Notice) {
        if self.detail {
            self.show(notice.kind.summary(), &one_line(&notice.detail));
        } else {
            self.show(DISCREET_TITLE, DISCREET_BODY);
        }
    }

    /// A failure is logged, once at warn level, and otherwise ignored: a missed notification
    /// must never stop the node.
    fn show(&mut self, title: &str, body: &str) {
        let Some(notifier) = self.notifier.as_mut() else {
            return;
        };
        if let Err(error) = notifier.show(title, body) {
            if self.warned {
                tracing::debug!(%error, "a notification was not shown");
            } else {
                self.warned = true;
                tracing::warn!(%error, "a notification was not shown");
            }
        }
    }
}

/// What the member chose, kept in `<home>/notify.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct NotifySettings {
    /// Show names and text in notifications.
    pub(crate) detail: bool,
    /// Quiet hours as written by the member, e.g. "22:00-07:00".
    pub(crate) quiet: Option<String>,
}

impl NotifySettings {
    /// The saved settings, or the discreet defaults if the file is missing, unreadable,
    /// too big or malformed: settings must never keep the daemon from starting.
    pub(crate) fn load(home: &Path) -> NotifySettings {
        let path = home.join(SETTINGS_FILE);
        // A FIFO or device here would block or never end; only a plain file is read.
        if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            return NotifySettings::default();
        }
        let Ok(file) = fs::File::open(&path) else {
            return NotifySettings::default();
        };
        let mut bytes = Vec::new();
        match file.take(MAX_SETTINGS_BYTES + 1).read_to_end(&mut bytes) {
            Ok(n) if n as u64 <= MAX_SETTINGS_BYTES => {
                serde_json::from_slice(&bytes).unwrap_or_default()
            }
            _ => NotifySettings::default(),
        }
    }

    /// Writes the settings so that a crash leaves either the old or the new file: a temporary
    /// file (mode 0600), synced, then renamed over.
    pub(crate) fn save(&self, home: &Path) -> io::Result<()> {
        let mut json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        json.push(b'\n');
        let tmp = home.join(SETTINGS_TMP);
        // A leftover from a crash; `create_new` below refuses to reuse it (or follow a link).
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let write = || -> io::Result<()> {
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, home.join(SETTINGS_FILE))
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The rename itself survives a crash only once the directory is synced.
        if let Ok(dir) = fs::File::open(home) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// The quiet hours, if set and valid; an invalid string counts as none.
    pub(crate) fn quiet_hours(&self) -> Option<QuietHours> {
        self.quiet.as_deref().and_then(|q| q.parse().ok())
    }

    /// Stores quiet hours in their canonical spelling.
    pub(crate) fn set_quiet_hours(&mut self, quiet: Option<QuietHours>) {
        self.quiet = quiet.map(|q| q.to_string());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ANN: &str = "Ann needs a ride today";

    fn quiet(s: &str) -> QuietHours {
        s.parse().unwrap()
    }

    fn at(hour: u16, minute: u16) -> u16 {
        hour * 60 + minute
    }

    /// Notifications into a file in a fresh directory.
    fn to_file(
        detail: bool,
        quiet: Option<QuietHours>,
    ) -> (tempfile::TempDir, PathBuf, Notifications) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notices");
        let notifications = Notifications::with_notifier(
            Some(Box::new(FileNotifier::new(path.clone()))),
            detail,
            quiet,
        );
        (dir, path, notifications)
    }

    fn lines(path: &Path) -> Vec<String> {
        match fs::read_to_string(path) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| vars.get(name).cloned()
    }

    // --- quiet hours ---

    #[test]
    fn quiet_hours_parse_both_spellings() {
        assert_eq!(
            quiet("22:00-07:00"),
            QuietHours::new(at(22, 0), at(7, 0)).unwrap()
        );
        assert_eq!(quiet("22-7"), QuietHours::new(at(22, 0), at(7, 0)).unwrap());
        assert_eq!(
            quiet(" 7:30 - 9 "),
            QuietHours::new(at(7, 30), at(9, 0)).unwrap()
        );
        assert_eq!(quiet("00:00-23:59"), QuietHours::new(0, 1439).unwrap());
        assert_eq!(quiet("23:59-0").to_string(), "23:59-00:00");
    }

    #[test]
    fn quiet_hours_display_round_trips() {
        assert_eq!(quiet("22-7").to_string(), "22:00-07:00");
        assert_eq!(quiet("9:05-17:30").to_string(), "09:05-17:30");
        for text in ["22:00-07:00", "00:00-00:01", "13:45-02:10"] {
            assert_eq!(quiet(text).to_string(), text);
        }
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let night = quiet("22:00-07:00");
        for (minute, inside) in [
            (at(21, 59), false),
            (at(22, 0), true),
            (at(23, 59), true),
            (0, true),
            (at(6, 59), true),
            (at(7, 0), false),
            (at(12, 0), false),
        ] {
            assert_eq!(night.contains(minute), inside, "minute {minute}");
        }
        assert_eq!((0..1440).filter(|&m| night.contains(m)).count(), 9 * 60);
    }

    #[test]
    fn quiet_hours_within_a_day() {
        let lunch = quiet("13:00-14:00");
        assert!(!lunch.contains(at(12, 59)));
        assert!(lunch.contains(at(13, 0)));
        assert!(lunch.contains(at(13, 59)));
        assert!(!lunch.contains(at(14, 0)));
        // Out-of-range minutes wrap rather than panic.
        assert!(lunch.contains(1440 + at(13, 30)));
        assert!(!lunch.contains(u16::MAX));
    }

    #[test]
    fn quiet_hours_length_is_end_minus_start_mod_a_day() {
        for start in (0..1440).step_by(37) {
            for end in (0..1440).step_by(53) {
                let Ok(q) = QuietHours::new(start, end) else {
                    assert_eq!(start, end);
                    continue;
                };
                let expected = (i32::from(end) - i32::from(start)).rem_euclid(1440);
                let count = (0..1440).filter(|&m| q.contains(m)).count();
                assert_eq!(count, usize::try_from(expected).unwrap(), "{q}");
            }
        }
    }

    #[test]
    fn quiet_hours_refuse_bad_input() {
        use QuietHoursError::*;
        for (text, error) in [
            ("", Format),
            ("22", Format),
            ("22:00", Format),
            ("22:00 07:00", Format),
            ("22:00–07:00", Format), // en dash
            ("-", Start),
            ("-07:00", Start),
            ("22:00-", End),
            ("24:00-07:00", Start),
            ("22:60-07:00", Start),
            ("22:0-07:00", Start),
            ("22:000-7", Start),
            ("022-7", Start),
            ("+1-2", Start),
            ("1-+2", End),
            ("-1-2", Start),
            ("1--2", End),
            ("22:00-07:00-08:00", End),
            ("a-b", Start),
            ("２２-７", Start), // fullwidth digits
            ("٢٢-٧", Start),    // Arabic-Indic digits
            ("99999999999999999999-1", Start),
            (":-:", Start),
            ("1:-2", Start),
            ("22:00-22:00", Empty),
            ("7-07:00", Empty),
            ("0-24", End),
        ] {
            assert_eq!(text.parse::<QuietHours>(), Err(error), "{text:?}");
        }
        assert_eq!(QuietHours::new(1440, 0), Err(Start));
        assert_eq!(QuietHours::new(0, 1440), Err(End));
    }

    /// Fuzzing without proptest (not a dev-dependency here): many pseudo-random strings from
    /// an alphabet of the characters that matter. Parsing never panics, and what parses
    /// prints back to something that parses to the same value.
    #[test]
    fn quiet_hours_parsing_never_panics() {
        const ALPHABET: &[char] = &[
            '0', '1', '2', '3', '5', '7', '9', ':', '-', ' ', '\t', '+', 'x', '٢', '\u{0}', '—',
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..50_000 {
            let len = next() % 14;
            let text: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            if let Ok(q) = text.parse::<QuietHours>() {
                parsed += 1;
                assert_ne!(q.start(), q.end());
                assert!(q.start() < 1440 && q.end() < 1440);
                assert_eq!(q.to_string().parse::<QuietHours>(), Ok(q), "{text:?}");
            }
        }
        assert!(parsed > 0, "the generator should hit some valid inputs");
    }

    #[test]
    fn local_minute_is_a_minute_of_the_day() {
        assert!(local_minute_now() < 1440);
    }

    // --- notices and notifications ---

    #[test]
    fn notice_debug_hides_the_detail() {
        let text = format!("{:?}", Notice::new(NoticeKind::UrgentRequest, ANN));
        assert!(!text.contains("Ann"), "{text}");
        assert!(text.contains("UrgentRequest"));
    }

    #[test]
    fn summaries_are_one_short_line_without_names() {
        for kind in [
            NoticeKind::UrgentRequest,
            NoticeKind::ClaimOnYourRequest,
            NoticeKind::Nudge,
            NoticeKind::LostRace,
            NoticeKind::RequestClosed,
            NoticeKind::Accepted,
        ] {
            let summary = kind.summary();
            assert!(!summary.is_empty() && summary.len() < 40);
            assert_eq!(one_line(summary), summary);
        }
    }

    #[test]
    fn discreet_mode_never_writes_the_detail() {
        let (_dir, path, mut n) = to_file(false, None);
        n.notify(Notice::new(NoticeKind::UrgentRequest, ANN), at(12, 0));
        n.notify(Notice::new(NoticeKind::Accepted, "Bob accepted"), at(12, 1));
        assert_eq!(lines(&path), ["Kith\tNew activity", "Kith\tNew activity"]);
        let text = fs::read_to_string(&path).unwrap();
        for secret in ["Ann", "Bob", "ride", NoticeKind::UrgentRequest.summary()] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn detail_mode_writes_summary_and_detail() {
        let (_dir, path, mut n) = to_file(true, None);
        n.notify(Notice::new(NoticeKind::UrgentRequest, ANN), at(12, 0));
        assert_eq!(lines(&path), [format!("Urgent request\t{ANN}")]);
    }

    #[test]
    fn detail_is_kept_to_one_short_line() {
        let (_dir, path, mut n) = to_file(true, None);
        let long = format!("Ann\tneeds\na ride\r{}", "x".repeat(500));
        n.notify(Notice::new(NoticeKind::Nudge, long), at(12, 0));
        let lines = lines(&path);
        assert_eq!(lines.len(), 1);
        let (title, body) = lines[0].split_once('\t').unwrap();
        assert_eq!(title, "Reminder");
        assert!(body.starts_with("Ann needs a ride "), "{body}");
        assert!(!body.contains('\t'));
        assert_eq!(body.chars().count(), MAX_TEXT_CHARS + 1);
    }

    #[test]
    fn quiet_hours_hold_then_flush_once_discreetly() {
        let (_dir, path, mut n) = to_file(false, Some(quiet("22:00-07:00")));
        for kind in [
            NoticeKind::UrgentRequest,
            NoticeKind::Nudge,
            NoticeKind::Accepted,
        ] {
            n.notify(Notice::new(kind, ANN), at(23, 0));
        }
        assert_eq!(n.held_count(), 3);
        assert!(lines(&path).is_empty());
        n.flush(at(3, 0)); // still night
        assert!(lines(&path).is_empty());
        n.flush(at(7, 0));
        assert_eq!(lines(&path), ["Kith\tNew activity (3)"]);
        assert_eq!(n.held_count(), 0);
        n.flush(at(7, 1));
        assert_eq!(lines(&path).len(), 1);
        assert!(!fs::read_to_string(&path).unwrap().contains("Ann"));
    }

    #[test]
    fn quiet_hours_flush_each_summary_in_detail_mode() {
        let (_dir, path, mut n) = to_file(true, Some(quiet("22-7")));
        n.notify(Notice::new(NoticeKind::UrgentRequest, ANN), at(1, 0));
        n.notify(
            Notice::new(NoticeKind::RequestClosed, "Ride done"),
            at(2, 0),
        );
        n.flush(at(8, 0));
        assert_eq!(
            lines(&path),
            [
                format!("Urgent request\t{ANN}"),
                "Request closed\tRide done".to_owned()
            ]
        );
    }

    #[test]
    fn held_notices_are_bounded_and_counted() {
        let (_dir, path, mut n) = to_file(false, Some(quiet("22-7")));
        for _ in 0..MAX_HELD + 10 {
            n.notify(Notice::new(NoticeKind::Nudge, ANN), at(23, 0));
        }
        assert_eq!(n.held.len(), MAX_HELD);
        assert_eq!(n.held_count(), MAX_HELD + 10);
        n.flush(at(9, 0));
        assert_eq!(
            lines(&path),
            [format!("Kith\tNew activity ({})", MAX_HELD + 10)]
        );

        let (_dir, path, mut n) = to_file(true, Some(quiet("22-7")));
        for _ in 0..MAX_HELD + 10 {
            n.notify(Notice::new(NoticeKind::Nudge, ANN), at(23, 0));
        }
        n.flush(at(9, 0));
        let lines = lines(&path);
        assert_eq!(lines.len(), FLUSH_SHOWN + 1);
        assert_eq!(
            lines[FLUSH_SHOWN],
            format!("Kith\tNew activity ({} more)", MAX_HELD + 10 - FLUSH_SHOWN)
        );
    }

    #[test]
    fn a_notice_after_quiet_hours_brings_the_held_ones_along() {
        let (_dir, path, mut n) = to_file(false, Some(quiet("22-7")));
        n.notify(Notice::new(NoticeKind::Nudge, ANN), at(23, 0));
        n.notify(Notice::new(NoticeKind::Nudge, ANN), at(8, 0)); // no flush was called
        assert_eq!(lines(&path), ["Kith\tNew activity (2)"]);
        n.notify(Notice::new(NoticeKind::Nudge, ANN), at(8, 1));
        assert_eq!(lines(&path).last().unwrap(), "Kith\tNew activity");
    }

    #[test]
    fn turning_detail_off_forgets_held_detail() {
        let (_dir, path, mut n) = to_file(true, Some(quiet("22-7")));
        n.notify(Notice::new(NoticeKind::UrgentRequest, ANN), at(23, 0));
        n.set_detail(false);
        assert!(n.held.iter().all(|h| h.detail.is_empty()));
        n.flush(at(7, 0));
        assert_eq!(lines(&path), ["Kith\tNew activity (1)"]);
    }

    #[test]
    fn changing_quiet_hours_takes_effect() {
        let (_dir, path, mut n) = to_file(false, None);
        n.set_quiet(Some(quiet("12-13")));
        n.notify(Notice::new(NoticeKind::Nudge, ANN), at(12, 30));
        assert!(lines(&path).is_empty());
        n.set_quiet(None);
        n.flush(at(12, 31));
        assert_eq!(lines(&path), ["Kith\tNew activity (1)"]);
    }

    #[cfg(unix)]
    #[test]
    fn notify_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, path, mut n) = to_file(false, None);
        n.notify(Notice::new(NoticeKind::Nudge, ""), 0);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_failing_notifier_is_survived() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be appended to.
        let mut n = Notifications::with_notifier(
            Some(Box::new(FileNotifier::new(dir.path().to_path_buf()))),
            false,
            None,
        );
        for minute in 0..3 {
            n.notify(Notice::new(NoticeKind::Nudge, ANN), minute);
        }
        assert!(n.warned);
    }

    #[test]
    fn backend_prefers_the_file_then_the_desktop() {
        assert_eq!(Backend::choose(env(&[])), Backend::Off);
        assert_eq!(
            Backend::choose(env(&[(NOTIFY_FILE_ENV, ""), (DBUS_SESSION_ENV, "")])),
            Backend::Off
        );
        assert_eq!(
            Backend::choose(env(&[
                (NOTIFY_FILE_ENV, "/tmp/n"),
                (DBUS_SESSION_ENV, "unix:path=/x")
            ])),
            Backend::File(PathBuf::from("/tmp/n"))
        );
        let desktop = Backend::choose(env(&[(DBUS_SESSION_ENV, "unix:path=/run/user/1/bus")]));
        if cfg!(all(unix, not(target_os = "macos"))) {
            assert_eq!(desktop, Backend::Desktop);
            let n = Notifications::from_env_with(
                env(&[(DBUS_SESSION_ENV, "unix:path=/x")]),
                false,
                None,
            );
            assert_eq!(n.sink(), "desktop");
        } else {
            assert_eq!(desktop, Backend::Off);
        }
    }

    #[test]
    fn off_when_neither_variable_is_set() {
        let mut n = Notifications::from_env_with(env(&[]), true, None);
        assert!(!n.is_on());
        assert_eq!(n.sink(), "off");
        n.notify(Notice::new(NoticeKind::UrgentRequest, ANN), 0);
        assert_eq!(n.held_count(), 0);
        n.flush(0);
    }

    #[test]
    fn from_env_with_a_file_writes_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        let mut n = Notifications::from_env_with(
            env(&[(NOTIFY_FILE_ENV, path.to_str().unwrap())]),
            false,
            None,
        );
        assert!(n.is_on());
        assert_eq!(n.sink(), "file");
        n.notify(Notice::new(NoticeKind::Accepted, ANN), 0);
        assert_eq!(lines(&path), ["Kith\tNew activity"]);
    }

    #[test]
    fn debug_output_carries_no_detail() {
        let (_dir, _path, mut n) = to_file(true, Some(quiet("22-7")));
        n.notify(Notice::new(NoticeKind::UrgentRequest, ANN), at(23, 0));
        let text = format!("{n:?}");
        assert!(!text.contains("Ann"), "{text}");
    }

    // --- settings ---

    #[test]
    fn settings_default_when_missing_or_bad() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        assert_eq!(NotifySettings::load(home), NotifySettings::default());
        assert_eq!(
            NotifySettings::load(&home.join("nowhere")),
            NotifySettings::default()
        );
        for bad in [
            &b"{"[..],
            b"null",
            b"[1,2]",
            b"{\"detail\": \"yes\"}",
            b"\xff\xfe",
        ] {
            fs::write(home.join(SETTINGS_FILE), bad).unwrap();
            assert_eq!(NotifySettings::load(home), NotifySettings::default());
        }
        // Too big, even if it were valid JSON.
        let padded = format!("{{\"detail\": true}}{}", " ".repeat(5000));
        fs::write(home.join(SETTINGS_FILE), padded).unwrap();
        assert_eq!(NotifySettings::load(home), NotifySettings::default());
        // Not a file.
        fs::remove_file(home.join(SETTINGS_FILE)).unwrap();
        fs::create_dir(home.join(SETTINGS_FILE)).unwrap();
        assert_eq!(NotifySettings::load(home), NotifySettings::default());
    }

    #[test]
    fn settings_tolerate_missing_and_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(SETTINGS_FILE),
            r#"{"detail": true, "later": 1}"#,
        )
        .unwrap();
        let loaded = NotifySettings::load(dir.path());
        assert!(loaded.detail);
        assert_eq!(loaded.quiet, None);
    }

    #[test]
    fn settings_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = NotifySettings {
            detail: true,
            quiet: None,
        };
        settings.set_quiet_hours(Some(quiet("22-7")));
        assert_eq!(settings.quiet.as_deref(), Some("22:00-07:00"));
        settings.save(dir.path()).unwrap();
        let loaded = NotifySettings::load(dir.path());
        assert_eq!(loaded, settings);
        assert_eq!(loaded.quiet_hours(), Some(quiet("22:00-07:00")));
        assert!(!dir.path().join(SETTINGS_TMP).exists());

        // Saving again replaces, also over a leftover temporary file.
        fs::write(dir.path().join(SETTINGS_TMP), "junk").unwrap();
        NotifySettings::default().save(dir.path()).unwrap();
        assert_eq!(NotifySettings::load(dir.path()), NotifySettings::default());
        assert!(!dir.path().join(SETTINGS_TMP).exists());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(SETTINGS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn settings_save_into_a_missing_home_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            NotifySettings::default()
                .save(&dir.path().join("gone"))
                .is_err()
        );
    }

    #[test]
    fn invalid_saved_quiet_hours_count_as_none() {
        let settings = NotifySettings {
            detail: false,
            quiet: Some("late".into()),
        };
        assert_eq!(settings.quiet_hours(), None);
    }
}
