//! Free loopback port selection.
//!
//! Ports are taken from below the kernel's ephemeral range (`ip_local_port_range`) when that
//! leaves room, so that the thousands of outgoing connections a local net makes (p2p dials,
//! ABCI and RPC clients) can never occupy a validator's listen port while it is restarting.
//! The start of the scan is randomised so that concurrently initialised nets (parallel test
//! processes) are unlikely to pick the same ports. If no such range exists the kernel is asked
//! for ports (`bind` to port 0).

use std::net::{Ipv4Addr, TcpListener};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

const LOWEST_PORT: u16 = 10_000;

/// Returns `n` distinct ports that were free on 127.0.0.1 at the time of the call.
pub fn pick_free_ports(n: usize) -> Result<Vec<u16>> {
    let range = ephemeral_range()
        .filter(|(lo, _)| *lo > LOWEST_PORT + 1000)
        .map(|(lo, _)| (LOWEST_PORT, lo - 1));
    match range {
        Some((lo, hi)) => pick_in_range(n, lo, hi, random_seed()),
        None => pick_from_kernel(n),
    }
}

/// True when nothing is listening on (and nothing else blocks binding) 127.0.0.1:`port`.
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn pick_in_range(n: usize, lo: u16, hi: u16, seed: u64) -> Result<Vec<u16>> {
    let span = u64::from(hi - lo) + 1;
    let start = seed % span;
    // Hold every listener until all ports are chosen so that they are pairwise distinct.
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for offset in 0..span {
        if ports.len() == n {
            break;
        }
        let port = lo + ((start + offset) % span) as u16;
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            held.push(listener);
            ports.push(port);
        }
    }
    if ports.len() < n {
        bail!(
            "only {} free loopback ports in {lo}..={hi}, need {n}",
            ports.len()
        );
    }
    Ok(ports)
}

fn pick_from_kernel(n: usize) -> Result<Vec<u16>> {
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding 127.0.0.1:0 to find a free port")?;
        ports.push(listener.local_addr().context("local_addr")?.port());
        held.push(listener);
    }
    Ok(ports)
}

fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // splitmix64 finaliser over time and pid.
    let mut z = nanos ^ (u64::from(std::process::id()) << 32);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_distinct_free_ports() {
        let ports = pick_free_ports(12).unwrap();
        assert_eq!(ports.len(), 12);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 12);
        assert!(ports.iter().all(|p| *p != 0 && port_is_free(*p)));
    }

    #[test]
    fn range_picking_skips_busy_ports_and_wraps() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = busy.local_addr().unwrap().port();
        // Start the scan exactly at `port`: it is skipped.
        let (lo, hi) = (port - 20, port + 20);
        let ports = pick_in_range(5, lo, hi, 20).unwrap();
        assert!(!ports.contains(&port));
        assert!(!port_is_free(port));
        assert!(pick_in_range(10, lo, lo, 0).is_err());
        assert_eq!(pick_from_kernel(3).unwrap().len(), 3);
    }
}
