//! The test command's clean-up (scripts/lib/cleanup.sh, used by scripts/test and scripts/readme-check): the script's
//! exit status is its own work's, never the clean-up's, and a server that is slow to exit is stopped and waited for
//! before its directory is removed. The servers here are small bash scripts standing in for redis-server, which keeps
//! writing its log into its directory while it shuts down.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

fn lib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/cleanup.sh")
}

/// A server that writes into its directory until it is told to stop, and then for another half second.
const SLOW_SERVER: &str = r#"trap 'for i in $(seq 1 10); do echo bye > "$1/shutdown.$i.log"; sleep 0.05; done; exit 0' TERM
echo $$ > "$1/server.pid"
while :; do echo up > "$1/server.log"; sleep 0.01; done"#;

/// A server that ignores SIGTERM: only SIGKILL stops it.
const STUBBORN_SERVER: &str = r#"trap '' TERM
echo $$ > "$1/server.pid"
while :; do sleep 0.01; done"#;

struct Run {
    status: i32,
    dir: PathBuf,
    server_pid: u32,
    stderr: String,
}

/// Runs a script in the shape of scripts/test: `set -euo pipefail`, a server started into a temporary directory, the
/// clean-up registered with `keep_status_on_exit CLEANUP`, then `exit CODE`.
fn run(server: &str, cleanup: &str, code: i32) -> Run {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "pgw-cleanup-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&scratch).unwrap();
    let server_file = scratch.join("server.sh");
    std::fs::write(&server_file, server).unwrap();
    let report = scratch.join("report");
    let script = format!(
        r#"set -euo pipefail
. "{lib}"
dir="$(mktemp -d)"
bash "{server}" "$dir" >/dev/null 2>&1 &
until [ -s "$dir/server.pid" ]; do sleep 0.01; done
echo "$dir $(cat "$dir/server.pid")" > "{report}"
keep_status_on_exit {cleanup}
exit {code}
"#,
        lib = lib().display(),
        server = server_file.display(),
        report = report.display(),
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_dir_all(&scratch);
    let (dir, pid) = report.trim().split_once(' ').unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        dir: PathBuf::from(dir),
        server_pid: pid.parse().unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether the process is still running (a zombie waiting to be reaped has exited).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// Runs the script with the library's clean-up of a server given `grace_secs`, and checks what must hold whatever
/// the server does: the script's status is `code`, the server had exited when the script did, its directory is gone.
fn stop_and_remove(server: &str, grace_secs: u32, code: i32) -> Run {
    let r = run(
        server,
        &format!(r#"stop_server_and_remove "$dir/server.pid" "$dir" {grace_secs}"#),
        code,
    );
    let alive = running(r.server_pid);
    kill(r.server_pid);
    assert_eq!(
        r.status, code,
        "the clean-up changed the exit status: {}",
        r.stderr
    );
    assert!(
        !alive,
        "the script exited while its server was still running"
    );
    assert!(!r.dir.exists(), "{} was left behind", r.dir.display());
    r
}

#[test]
fn a_green_run_stays_green_when_the_server_is_slow_to_exit() {
    stop_and_remove(SLOW_SERVER, 5, 0);
}

#[test]
fn a_red_run_stays_red() {
    stop_and_remove(SLOW_SERVER, 5, 3);
}

#[test]
fn a_failing_clean_up_does_not_decide_the_status() {
    let r = run(SLOW_SERVER, r#"false"#, 0);
    kill(r.server_pid);
    let _ = std::fs::remove_dir_all(&r.dir);
    assert_eq!(r.status, 0, "{}", r.stderr);
}

#[test]
fn a_server_that_ignores_sigterm_is_killed_after_the_grace() {
    let r = stop_and_remove(STUBBORN_SERVER, 1, 0);
    assert!(r.stderr.contains("SIGKILL"), "{}", r.stderr);
}

/// The scripts that start servers clean up through the library, so the behaviour tested above is theirs.
#[test]
fn the_test_command_and_the_readme_check_use_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for script in ["scripts/test", "scripts/readme-check"] {
        let text = std::fs::read_to_string(root.join(script)).unwrap();
        assert!(
            text.contains(". scripts/lib/cleanup.sh") && text.contains("keep_status_on_exit "),
            "{script} does not clean up through scripts/lib/cleanup.sh"
        );
        assert!(
            !text.contains("trap "),
            "{script} sets a trap of its own; use keep_status_on_exit"
        );
    }
}
