//! The command line's contract without a daemon: exit codes and one-line errors.
//! (Also makes cargo build the `kith` binary before the end-to-end tests run.)

use std::process::{Command, Output, Stdio};

fn kith(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kith"))
        .args(args)
        .env("KITH_HOME", home)
        .env_remove("KITH_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn commands_that_need_the_daemon_exit_3_without_it() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["status"][..],
        &["feed"],
        &["checkin", "--mood", "okay"],
        &["circle", "list"],
        &["claim", "abc"],
        &["invite", "--qr"],
    ] {
        let out = kith(home.path(), args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

#[test]
fn wrong_usage_exits_2() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["checkin", "--mood", "ecstatic"][..],
        &["checkin", "--mood", "6"],
        &["ask", "--kind", "taxi", "a ride"],
        &["ask", "title without kind"],
        &["frobnicate"],
        &["export", "--format", "csv"],
        &["wipe"],
        &["demo", "--fast", "--seconds", "3"],
        &["demo", "--seconds", "soon"],
    ] {
        let out = kith(home.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn init_needs_a_passphrase_without_a_terminal_and_refuses_twice() {
    let home = tempfile::tempdir().unwrap();
    let out = kith(home.path(), &["init", "--name", "Ann"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    assert!(!home.path().join("keyfile").exists());

    let pass = home.path().join("pass");
    std::fs::write(&pass, "a good passphrase\n").unwrap();
    let node = home.path().join("node");
    let first = kith(
        &node,
        &[
            "init",
            "--name",
            "Ann",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let member = String::from_utf8_lossy(&first.stdout).trim().to_string();
    assert_eq!(member.len(), 52, "{member}");
    let keyfile = std::fs::read(node.join("keyfile")).unwrap();

    let second = kith(
        &node,
        &[
            "init",
            "--name",
            "Bob",
            "--passphrase-file",
            pass.to_str().unwrap(),
        ],
    );
    assert_eq!(second.status.code(), Some(1));
    assert!(stderr(&second).contains("already"), "{}", stderr(&second));
    assert_eq!(
        std::fs::read(node.join("keyfile")).unwrap(),
        keyfile,
        "second init changed nothing"
    );
}

#[test]
fn daemon_refuses_an_uninitialised_home() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kith"))
        .args(["daemon"])
        .env("KITH_HOME", home.path().join("nothing"))
        .env("KITH_PASSPHRASE", "x")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("kith init"), "{}", stderr(&out));
}
