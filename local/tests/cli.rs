//! `dome-net up --detach` / `status` / `down` / `reset` against a real kvstore network.
//! Needs the CometBFT binary like `kvstore_net.rs` and fails without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use dome_localnet::{default_cometbft_bin, port_accepts, LocalNet};

fn cometbft_bin() -> PathBuf {
    let bin = std::env::var_os("DOME_COMETBFT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(default_cometbft_bin);
    assert!(
        bin.is_file(),
        "CometBFT binary not found at {}: run local/bootstrap.sh or set DOME_COMETBFT_BIN",
        bin.display()
    );
    bin
}

fn dome_net(args: &[&str], dir: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_dome-net"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    eprintln!(
        "dome-net {args:?}: {}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Makes sure a detached supervisor is stopped even if an assertion fails.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = dome_net(&["down"], self.0);
    }
}

#[test]
fn detach_status_down_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let bin = cometbft_bin();
    let bin = bin.to_str().unwrap();
    let up = [
        "up",
        "--kvstore",
        "--validators",
        "4",
        "--timeout-commit",
        "200ms",
        "--cometbft-bin",
        bin,
        "--detach",
    ];

    let _guard = Down(&dir);
    let out = dome_net(&up, &dir);
    assert!(out.status.success());
    let urls: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(urls.len(), 4);
    assert!(urls.iter().all(|u| u.starts_with("http://127.0.0.1:")));
    assert!(dir.join("dome-net.pid").is_file());

    // A second `up` on the same dir is refused while the first runs.
    assert!(!dome_net(&up, &dir).status.success());

    let net = LocalNet::open(&dir).unwrap();
    net.wait_for_height_all(3, Duration::from_secs(30)).unwrap();
    // Block 1 carries the genesis time; block 2 the (real) time its commit was voted.
    let block2_time = |net: &LocalNet| {
        net.wait_for_height(0, 2, Duration::from_secs(30)).unwrap();
        net.rpc_get(0, "/block?height=2").unwrap()["block"]["header"]["time"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first_time = block2_time(&net);
    let out = dome_net(&["status"], &dir);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("supervisor: running"), "{text}");
    assert_eq!(text.matches("height=").count(), 4, "{text}");

    // `reset` refuses to run under a live supervisor.
    assert!(!dome_net(&["reset"], &dir).status.success());

    assert!(dome_net(&["down"], &dir).status.success());
    assert!(!dir.join("dome-net.pid").exists());
    for n in net.nodes() {
        assert!(!port_accepts(n.rpc_port, Duration::from_millis(200)));
    }
    let out = dome_net(&["status"], &dir);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("supervisor: not running"), "{text}");
    assert_eq!(text.matches(" down").count(), 4, "{text}");

    // After a reset the chain starts again from height 1 (a new block 2), with the same ports
    // and keys.
    assert!(dome_net(&["reset"], &dir).status.success());
    assert!(dome_net(&up, &dir).status.success());
    assert_ne!(block2_time(&net), first_time, "chain was not reset");
    assert!(dome_net(&["down"], &dir).status.success());
}
