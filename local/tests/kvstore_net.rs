//! A real 4-validator CometBFT network running the built-in kvstore: start, stop one node,
//! check the others keep going, restart it, check it catches up, check nothing survives drop.
//!
//! Needs the CometBFT v0.38.25 binary: `DOME_COMETBFT_BIN`, or where `local/bootstrap.sh`
//! installs it. Fails (does not skip) when it is missing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dome_localnet::{
    default_cometbft_bin, pid_alive, port_accepts, AppKind, LocalNet, NetConfig, ProcessRole,
    MANIFEST_FILE,
};

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

/// Hex of a byte string, for RPC `0x...` arguments.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn max_height(net: &LocalNet, nodes: std::ops::Range<usize>) -> u64 {
    nodes.map(|i| net.height(i).unwrap()).max().unwrap()
}

#[test]
fn kvstore_net_survives_a_node_restart() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = NetConfig::new(tmp.path().join("net"), cometbft_bin(), AppKind::Kvstore);
    cfg.validators = 4;
    cfg.timeout_commit = Duration::from_millis(200);
    cfg.chain_id = "kvstore-test".into();
    let mut net = LocalNet::init(cfg).unwrap();

    // Layout: manifest, one genesis with all validators shared by every node.
    assert!(net.dir().join(MANIFEST_FILE).is_file());
    let reopened = LocalNet::open(net.dir()).unwrap();
    assert_eq!(reopened.nodes(), net.nodes());
    drop(reopened);
    let genesis0 = std::fs::read(net.node_dir(0).join("config/genesis.json")).unwrap();
    for i in 1..4 {
        assert_eq!(
            std::fs::read(net.node_dir(i).join("config/genesis.json")).unwrap(),
            genesis0
        );
    }
    let genesis: serde_json::Value = serde_json::from_slice(&genesis0).unwrap();
    assert_eq!(genesis["validators"].as_array().unwrap().len(), 4);
    assert_eq!(genesis["chain_id"], "kvstore-test");

    net.start().unwrap();
    net.wait_for_height_all(3, Duration::from_secs(30)).unwrap();
    for i in 0..4 {
        let s = net.status(i).unwrap();
        assert_eq!(s.moniker, format!("node{i}"));
        assert_eq!(s.node_id, net.nodes()[i].node_id);
    }
    // Everyone agrees on the chain.
    let hash3 = net.app_hash(0, 3).unwrap();
    for i in 1..4 {
        assert_eq!(net.app_hash(i, 3).unwrap(), hash3);
    }

    // A transaction committed while node 3 is up.
    let tx = net
        .rpc_get(0, &format!("/broadcast_tx_sync?tx=0x{}", hex(b"before=1")))
        .unwrap();
    assert_eq!(tx["code"], 0, "{tx}");

    // Stop node 3: the other three (3 x 10 > 2/3 of 40) keep committing.
    net.stop_node(3).unwrap();
    assert!(!net.node_running(3));
    assert!(!port_accepts(
        net.nodes()[3].rpc_port,
        Duration::from_millis(200)
    ));
    let base = max_height(&net, 0..3);
    for i in 0..3 {
        net.wait_for_height(i, base + 3, Duration::from_secs(15))
            .unwrap();
    }
    // A transaction committed while node 3 is down.
    let tx = net
        .rpc_get(1, &format!("/broadcast_tx_sync?tx=0x{}", hex(b"during=2")))
        .unwrap();
    assert_eq!(tx["code"], 0, "{tx}");
    let after_tx = max_height(&net, 0..3) + 2;
    net.wait_for_height(0, after_tx, Duration::from_secs(15))
        .unwrap();

    // Restart node 3 on the same home and ports: it catches up.
    net.start_node(3).unwrap();
    let target = max_height(&net, 0..3);
    net.wait_for_height(3, target + 1, Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        net.app_hash(3, target).unwrap(),
        net.app_hash(0, target).unwrap()
    );
    for (key, value) in [("before", "1"), ("during", "2")] {
        let q = net
            .rpc_get(3, &format!("/abci_query?data=0x{}", hex(key.as_bytes())))
            .unwrap();
        let got = q["response"]["value"].as_str().unwrap_or_default();
        // base64 of the one-byte values "1" and "2".
        let want = match value {
            "1" => "MQ==",
            _ => "Mg==",
        };
        assert_eq!(got, want, "query {key} on node 3: {q}");
    }

    // A node crashing on its own is reported by poll_exited and can be restarted.
    assert!(net.poll_exited().is_empty());
    let pid2 = net.node_pid(2).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid2.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let exited = loop {
        let exited = net.poll_exited();
        if !exited.is_empty() || Instant::now() > deadline {
            break exited;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exited.len(), 1, "{exited:?}");
    assert_eq!(
        (exited[0].validator, exited[0].role, exited[0].pid),
        (2, ProcessRole::Node, pid2)
    );
    assert!(!net.node_running(2));
    net.start_node(2).unwrap();
    let target = max_height(&net, 0..2);
    net.wait_for_height(2, target + 1, Duration::from_secs(30))
        .unwrap();
    assert!(net.poll_exited().is_empty());
    assert!((0..4).all(|i| net.node_running(i)));

    // Drop kills everything.
    let pids: Vec<u32> = (0..4).filter_map(|i| net.node_pid(i)).collect();
    assert_eq!(pids.len(), 4);
    let ports: Vec<u16> = net
        .nodes()
        .iter()
        .flat_map(|n| [n.rpc_port, n.p2p_port])
        .collect();
    drop(net);
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} survived drop");
    }
    for port in ports {
        assert!(
            !port_accepts(port, Duration::from_millis(200)),
            "port {port} still answers after drop"
        );
    }
    eprintln!("kvstore net test took {:?}", started.elapsed());
}
