//! The command line's grammar (the contract in docs and the README).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

const MOODS: &str = "1-5 or struggling, low, okay, good, great";
const KINDS: &str = "meals, childcare, ride, errand, talk, info, other";

#[derive(Debug, Parser)]
#[command(
    name = "kith",
    version,
    about = "A private support circle: check-ins and help requests shared only with your circle"
)]
pub struct Cli {
    /// Where this node keeps its state (default: ~/.local/share/kith).
    #[arg(long, env = "KITH_HOME", global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Read the passphrase from FILE (otherwise KITH_PASSPHRASE, otherwise a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this device's identity and its encrypted store.
    Init {
        /// The name other members see.
        #[arg(long)]
        name: String,
    },
    /// Run the node in the foreground until SIGINT or SIGTERM.
    Daemon {
        /// Multiaddr to listen on for other members (repeatable).
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Do not look for members on the local network.
        #[arg(long)]
        no_mdns: bool,
    },
    /// Whether the daemon runs, and what it sees.
    Status,
    /// Create or list circles.
    #[command(subcommand)]
    Circle(CircleCommand),
    /// The circle's roster.
    Members {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
    },
    /// Tell the circle how you are.
    Checkin {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
        /// 1-5 or struggling, low, okay, good, great.
        #[arg(long, value_parser = parse_mood)]
        mood: String,
        /// A short note.
        #[arg(long)]
        note: Option<String>,
        /// What would help right now, in your words.
        #[arg(long, value_name = "TEXT")]
        would_help: Option<String>,
        /// Only these members (and you) may read it (repeatable).
        #[arg(long, value_name = "MEMBER")]
        to: Vec<String>,
    },
    /// Ask the circle for help.
    Ask {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
        /// meals, childcare, ride, errand, talk, info or other.
        #[arg(long, value_parser = parse_kind)]
        kind: String,
        /// What you need, in a few words.
        title: String,
        #[arg(long)]
        details: Option<String>,
        /// A date (2026-12-01), a time (2026-12-01T18:00), today, tomorrow, a weekday, or
        /// "in 3 days".
        #[arg(long, value_name = "WHEN")]
        needed_by: Option<String>,
        /// Start of a time window ending at --needed-by; with --every, the first day.
        #[arg(long, value_name = "WHEN")]
        from: Option<String>,
        #[arg(long)]
        urgent: bool,
        /// How soon, in plain words: today, this-week or whenever.
        #[arg(long, value_name = "WORD")]
        urgency: Option<String>,
        /// How many helpers or portions are wanted.
        #[arg(long, value_name = "N")]
        helpers: Option<u32>,
        /// A recurring need: the days, e.g. mon,wed,fri or daily. Expands into dated slots
        /// that members claim one by one.
        #[arg(long, value_name = "DAYS", requires = "for_")]
        every: Option<String>,
        /// How long a recurring need lasts: 3w, 10d...
        #[arg(long = "for", id = "for_", value_name = "DURATION", requires = "every")]
        for_: Option<String>,
        /// The time of day of each slot (default 18:00).
        #[arg(long, value_name = "HH:MM", requires = "every")]
        at: Option<String>,
        /// Only these members (and you) may read it (repeatable).
        #[arg(long, value_name = "MEMBER")]
        to: Vec<String>,
    },
    /// Offer help without being asked: "I can do Tuesday school pickups".
    Offer {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
        /// meals, childcare, ride, errand, talk, info or other.
        #[arg(long, value_parser = parse_kind, default_value = "other")]
        kind: String,
        /// What you offer, in a few words.
        title: String,
        #[arg(long)]
        details: Option<String>,
        /// When it holds, in your words: "Tuesdays after school", "after 9 pm".
        #[arg(long, value_name = "TEXT")]
        when: Option<String>,
        /// Only these members (and you) may read it (repeatable).
        #[arg(long, value_name = "MEMBER")]
        to: Vec<String>,
    },
    /// Standing offers of help that are still open.
    Offers {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
    },
    /// Accept someone's offer of help.
    Accept {
        id: String,
        /// A short message for them.
        #[arg(long)]
        message: Option<String>,
    },
    /// Take back your offer.
    Withdraw { id: String },
    /// Gently ask a member to check in; only they see it.
    Nudge {
        member: String,
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Thank the members who helped with your request (or one of them).
    Thank {
        id: String,
        member: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Change the words or time of your check-in, request or offer.
    Edit {
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        details: Option<String>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long, value_name = "WHEN")]
        needed_by: Option<String>,
        #[arg(long, value_name = "TEXT")]
        when: Option<String>,
    },
    /// Your quiet hours, e.g. 22:00-07:00 (or "off"): notifications wait, and members see
    /// them beside your name.
    Quiet { hours: String },
    /// Desktop notifications: discreet ("Kith: new activity") unless you opt in to detail.
    Notify {
        /// on: show who and what; off: discreet.
        #[arg(long, value_parser = ["on", "off"])]
        detail: Option<String>,
    },
    /// Make an invite code for someone to join the circle (default: 1 use, 24 h); or list
    /// and revoke invites.
    #[command(args_conflicts_with_subcommands = true)]
    Invite {
        #[command(subcommand)]
        action: Option<InviteCommand>,
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
        /// How long the code stays valid: 30m, 24h, 7d...
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: u64,
        /// How many people may join with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Also draw the code as a QR code (on stderr; stdout keeps the code line).
        #[arg(long)]
        qr: bool,
    },
    /// Join a circle with an invite code; waits until admitted. Prints the circle id.
    Join { code: String },
    /// Offer to help with a request (one slot of a recurring need).
    Claim {
        id: String,
        /// The slot to take: its number or its date (2026-12-02).
        #[arg(long)]
        slot: Option<String>,
        /// A short message: "I'll bring soup at 6". Claiming again changes it.
        #[arg(long)]
        message: Option<String>,
    },
    /// Withdraw your offer to help.
    Unclaim {
        id: String,
        #[arg(long)]
        slot: Option<String>,
    },
    /// Mark your request fulfilled.
    Done { id: String },
    /// Cancel your request.
    Cancel { id: String },
    /// Reply to a check-in or request.
    Reply { id: String, text: String },
    /// The circle's items, newest first.
    Feed {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Only requests and offers still taking help.
        #[arg(long)]
        open: bool,
        /// Only what you posted.
        #[arg(long)]
        mine: bool,
        /// Only what you offered to help with.
        #[arg(long)]
        claimed_by_me: bool,
        /// checkin, request, offer or nudge; or a kind of help (meals, ride...).
        #[arg(long)]
        kind: Option<String>,
    },
    /// One item with its claims and replies.
    Show { id: String },
    /// Print each new or changed item as it arrives.
    Watch {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
    },
    /// The whole decrypted circle, for backup or another tool.
    Export {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
        #[arg(long, value_parser = ["json"], default_value = "json")]
        format: String,
    },
    /// A throwaway circle of three members on this machine, to see Kith work; leaves nothing
    /// behind and does not touch your own node.
    Demo {
        /// A few seconds instead of about a minute.
        #[arg(long)]
        fast: bool,
        /// How long the scripted part lasts, in seconds.
        #[arg(long, value_name = "N", conflicts_with = "fast")]
        seconds: Option<u64>,
    },
    /// Remove a member: they are refused from then on and a new circle key is made that
    /// they never get. With --dry-run, only say what they keep and what they lose.
    Remove {
        /// A member id, a unique prefix of one, or a unique name.
        member: String,
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Approve a pending removal, policy change or invite (see `kith pending`).
    Approve {
        id: String,
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
    },
    /// Roster changes and invites waiting for stewards' approvals.
    Pending {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
    },
    /// Make a member a steward (stewards add and remove members), or a member again.
    Role {
        member: String,
        #[arg(value_parser = ["steward", "member"])]
        role: String,
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
    },
    /// Destroy this node's keys and data at once.
    Wipe {
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CircleCommand {
    /// Found a circle; you become its first steward. Prints its id.
    Create { name: String },
    /// The circles this node is in.
    List,
    /// How many stewards must approve adding or removing a member (1: any steward).
    Policy {
        #[arg(long)]
        approvals: u32,
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// The circle's invites and their state.
    List {
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
    },
    /// Stop an invite from admitting anyone.
    Revoke {
        /// The invite's id (from `kith invite list`), or a unique prefix of it.
        id: String,
        #[arg(long, value_name = "ID")]
        circle: Option<String>,
    },
}

fn parse_ttl(text: &str) -> Result<u64, String> {
    humantime::parse_duration(text.trim())
        .map(|d| d.as_secs())
        .map_err(|e| format!("cannot understand the duration {text:?} ({e}); try 30m, 24h or 7d"))
}

fn parse_mood(text: &str) -> Result<String, String> {
    let word = text.trim().to_lowercase();
    match word.as_str() {
        "1" | "2" | "3" | "4" | "5" | "struggling" | "low" | "okay" | "good" | "great" => Ok(word),
        _ => Err(format!("unknown mood {text:?}; expected {MOODS}")),
    }
}

fn parse_kind(text: &str) -> Result<String, String> {
    let word = text.trim().to_lowercase();
    match word.as_str() {
        "meals" | "childcare" | "ride" | "errand" | "talk" | "info" | "other" => Ok(word),
        _ => Err(format!("unknown kind {text:?}; expected {KINDS}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn moods_and_kinds() {
        assert_eq!(parse_mood(" Okay ").unwrap(), "okay");
        assert_eq!(parse_mood("5").unwrap(), "5");
        assert!(parse_mood("6").is_err());
        assert!(parse_mood("fine").is_err());
        assert_eq!(parse_kind("RIDE").unwrap(), "ride");
        assert!(parse_kind("taxi").is_err());
    }
}
