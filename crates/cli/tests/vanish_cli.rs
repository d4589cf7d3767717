//! Real processes on a `file://` store: the operator removes a held lock's folder (as `rm -r`,
//! a lifecycle rule or a restore would), and the next `cairn lock run` gets a fencing token
//! above the live holder's, not token 1 again (issue 18, item 2).

mod common;

use common::cli::Env;

/// `lock run L -- sh -c 'echo $CAIRN_FENCING_TOKEN…'` as `node`, spawned.
fn token_printer(env: &Env, node: &str, then: &str) -> common::cli::Spawned {
    env.spawn(
        node,
        &[
            "lock",
            "run",
            "-n",
            "L",
            "--",
            "sh",
            "-c",
            &format!("echo $CAIRN_FENCING_TOKEN; {then}"),
        ],
    )
}

fn token(line: &str) -> u64 {
    line.trim()
        .parse()
        .unwrap_or_else(|e| panic!("not a fencing token: {line:?} ({e})"))
}

#[test]
fn should_give_the_next_holder_a_higher_token_after_the_held_locks_folder_was_removed() {
    let env = Env::new();
    // A holder that stays in its critical section until it is stopped.
    let mut holder = token_printer(&env, "a", "exec sleep 60");
    let held = token(&holder.line());
    let folder = env.root().join("locks").join("L");
    assert!(folder.is_dir(), "the lock's folder is {}", folder.display());
    std::fs::remove_dir_all(&folder).unwrap();

    // The lock looks free; the next holder must be fenced above the live one.
    let mut next = token_printer(&env, "b", "true");
    let theirs = token(&next.line());
    assert_eq!(next.wait(), Some(0), "stderr: {}", next.stderr());
    assert!(
        theirs > held,
        "after the folder was removed, b got token {theirs} while a holds {held}"
    );

    // And again with nothing held: each incarnation numbers above the last.
    std::fs::remove_dir_all(&folder).unwrap();
    let mut last = token_printer(&env, "c", "true");
    let third = token(&last.line());
    assert_eq!(last.wait(), Some(0), "stderr: {}", last.stderr());
    assert!(third > theirs, "token {third} after {theirs}");

    // The holder was live throughout: it is still in its critical section.
    assert!(holder.child.try_wait().unwrap().is_none(), "a left early");
    holder.signal(libc::SIGTERM);
    holder.wait();
}

/// `doctor` cannot read a bucket's lifecycle rules; it says so, and says which folders a
/// rule may touch, in text and in JSON.
#[test]
fn should_have_doctor_say_lifecycle_rules_were_not_checked_and_which_folders_they_may_touch() {
    let env = Env::new();
    let text = env.run("a", &["doctor"]).ok().stdout();
    let warning = text
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("lifecycle"))
        .unwrap_or_else(|| panic!("no lifecycle warning in:\n{text}"));
    assert!(warning.contains("not checked"), "{warning}");
    for folder in ["_cairn/", "locks/", "records/", "turns/", "log/"] {
        assert!(warning.contains(folder), "{folder} missing from: {warning}");
    }
    let json = env.run("a", &["doctor", "--json"]).ok().json();
    assert_eq!(json["lifecycle"]["checked"], false, "{json}");
    assert!(json["lifecycle"]["guidance"]
        .as_str()
        .is_some_and(|g| g.contains("locks/")));
}
