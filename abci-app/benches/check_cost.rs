//! Cost of checking one catalogue-event transaction, as CheckTx does it: decode, verify the
//! origin's signature and apply the bus rules. Also the decode+rules part alone (what
//! FinalizeBlock pays when the signature was already verified by this node's CheckTx), and
//! the same per event when the events travel in bundles.
//!
//! `cargo bench -p dome-abci --bench check_cost` prints medians over repeated batches.

use std::time::Instant;

use dome_abci::state::{BusState, Pending, PlainVerifier, SignatureCheck, View};
use dome_events::{test_keys, PublicKey, Transaction};

const ORIGINS: u32 = 4;
const TXS_PER_BATCH: u64 = 2_000;
const BATCHES: usize = 15;

/// `TXS_PER_BATCH` catalogue events of `ORIGINS` origins, `bundle` consecutive events of one
/// origin per transaction (1: each alone).
fn transactions(bundle: usize) -> Vec<Vec<u8>> {
    let per_origin = TXS_PER_BATCH / ORIGINS as u64;
    let mut txs = Vec::new();
    for origin in 0..ORIGINS {
        let key = test_keys::member_keypair(origin);
        let signed: Vec<Transaction> = (1..=per_origin)
            .map(|seq| {
                let id = format!("offering-{origin}-{seq}");
                let event = test_keys::sample_create(origin, seq, &id);
                match Transaction::signed_event(event, &key) {
                    Ok(tx) => tx,
                    Err(e) => panic!("benchmark input is invalid: {e}"),
                }
            })
            .collect();
        for chunk in signed.chunks(bundle) {
            let bytes = match chunk {
                [tx] => tx.encode(),
                _ => dome_events::encode_bundle(chunk),
            };
            match bytes {
                Ok(bytes) => txs.push(bytes),
                Err(e) => panic!("benchmark input is invalid: {e}"),
            }
        }
    }
    txs
}

/// Accepts every signature: isolates decode + rules from verification.
struct AlreadyVerified;

impl SignatureCheck for AlreadyVerified {
    fn verify(&self, _: &[u8; 32], _: &Transaction, _: usize, _: &PublicKey) -> bool {
        true
    }
}

/// Median over the batches of the time per event.
fn median_micros_per_event(txs: &[Vec<u8>], verifier: &dyn SignatureCheck) -> f64 {
    let members: Vec<_> = (0..ORIGINS).map(test_keys::member_info).collect();
    let base = BusState::genesis(&members, &[]);
    let mut samples = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let mut pending = Pending::default();
        let start = Instant::now();
        for tx in txs {
            let mut view = View {
                base: &base,
                pending: &mut pending,
            };
            if let Err(r) = view.apply_bus_bytes(tx, 1, verifier) {
                panic!("benchmark transaction rejected: {:?} {}", r.code, r.log);
            }
        }
        samples.push(start.elapsed().as_secs_f64() * 1e6 / TXS_PER_BATCH as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let txs = transactions(1);
    let size = txs.iter().map(Vec::len).sum::<usize>() / txs.len();
    let full = median_micros_per_event(&txs, &PlainVerifier);
    let rules_only = median_micros_per_event(&txs, &AlreadyVerified);
    println!("transaction size: {size} bytes (mean)");
    println!("check one transaction (decode + ed25519 verify + rules): median {full:.1} us");
    println!("decode + rules, signature already verified:           median {rules_only:.1} us");
    println!(
        "signature share: {:.0}%",
        (full - rules_only) / full * 100.0
    );
    for bundle in [8, 32] {
        let bundles = transactions(bundle);
        let size = bundles.iter().map(Vec::len).sum::<usize>() / bundles.len();
        let full = median_micros_per_event(&bundles, &PlainVerifier);
        let rules_only = median_micros_per_event(&bundles, &AlreadyVerified);
        println!(
            "bundles of {bundle} ({size} bytes), per event: decode + verify + rules {full:.1} us, decode + rules {rules_only:.1} us"
        );
    }
    block_calls(&txs[..1000]);
}

/// The ABCI calls of one block, in process: CheckTx of every transaction, then
/// PrepareProposal, ProcessProposal, FinalizeBlock and Commit.
fn block_calls(txs: &[Vec<u8>]) {
    use tendermint_abci::Application;
    use tendermint_proto::v0_38::abci::{
        RequestCheckTx, RequestFinalizeBlock, RequestInitChain, RequestPrepareProposal,
        RequestProcessProposal,
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let app = match dome_abci::DomeApp::open(&dir.path().join("bus.redb")) {
        Ok(a) => a,
        Err(e) => panic!("open: {e}"),
    };
    let state = dome_events::genesis::demo_app_state(ORIGINS as usize);
    app.init_chain(RequestInitChain {
        app_state_bytes: serde_json::to_vec(&state).unwrap_or_default().into(),
        ..Default::default()
    });
    let t = Instant::now();
    for tx in txs {
        let r = app.check_tx(RequestCheckTx {
            tx: tx.clone().into(),
            r#type: 0,
        });
        assert_eq!(r.code, 0, "{}", r.log);
    }
    let check = t.elapsed();
    let block: Vec<bytes::Bytes> = txs.iter().map(|t| t.clone().into()).collect();
    let t = Instant::now();
    let prepared = app.prepare_proposal(RequestPrepareProposal {
        txs: block.clone(),
        max_tx_bytes: 1 << 30,
        height: 1,
        ..Default::default()
    });
    let prepare = t.elapsed();
    assert_eq!(prepared.txs.len(), txs.len());
    let t = Instant::now();
    app.process_proposal(RequestProcessProposal {
        txs: block.clone(),
        height: 1,
        hash: vec![1; 32].into(),
        ..Default::default()
    });
    let process = t.elapsed();
    let t = Instant::now();
    app.finalize_block(RequestFinalizeBlock {
        txs: block,
        height: 1,
        hash: vec![1; 32].into(),
        ..Default::default()
    });
    let finalize = t.elapsed();
    let t = Instant::now();
    app.commit();
    let commit = t.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / txs.len() as f64;
    println!(
        "block of {} txs, per tx: check_tx {:.1} us, prepare {:.1} us, process {:.1} us, finalize {:.1} us, commit {:.1} us",
        txs.len(),
        per(check),
        per(prepare),
        per(process),
        per(finalize),
        per(commit)
    );
}
