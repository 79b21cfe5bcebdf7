//! `kith demo --fast`: three real daemons on 127.0.0.1, every member sees the others' posts,
//! and nothing is left behind.

use std::process::{Command, Stdio};

#[test]
fn the_fast_demo_shows_every_member_the_others_posts_and_leaves_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_kith"))
        .args(["demo", "--fast"])
        // The demo must not need (or touch) a home of its own.
        .env("KITH_HOME", "/nonexistent/kith-demo-must-not-use-this")
        .env_remove("KITH_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");

    for viewer in ["Ann", "Bob", "Cy"] {
        for author in ["Ann", "Bob", "Cy"] {
            let line = format!("[{viewer} sees] {author} checked in:");
            if viewer == author {
                assert!(!stdout.contains(&line), "{line:?} in\n{stdout}");
            } else {
                assert!(stdout.contains(&line), "no {line:?} in\n{stdout}");
            }
        }
    }
    for viewer in ["Ann", "Bob"] {
        assert!(
            stdout.contains(&format!("[{viewer} sees] Cy asks for help")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("[Cy sees] Bob offers to help"), "{stdout}");
    assert!(stdout.contains("[Cy sees] Ann replied"), "{stdout}");
    assert!(stdout.contains("[Ann sees] Cy marked"), "{stdout}");

    let dir = stderr
        .lines()
        .find_map(|l| l.strip_prefix("kith: demo files in "))
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_else(|| panic!("no temp dir named in\n{stderr}"));
    assert!(dir.contains("kith-demo-"), "{dir}");
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");
    assert!(!std::path::Path::new("/nonexistent/kith-demo-must-not-use-this").exists());
}
