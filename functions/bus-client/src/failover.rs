//! Endpoint failover: which validator to ask first, how failures are classified, and the
//! loop that walks the endpoints until one answers.
//!
//! The loop itself knows nothing about HTTP: an attempt is any future that either answers
//! or reports an [`EndpointFailure`], so the order and bookkeeping are unit-tested with
//! fake attempts.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use thiserror::Error;

/// Why one attempt against one endpoint did not produce an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The endpoint could not be reached or the connection broke (refused, reset, HTTP
    /// error status, unreadable body).
    Transport,
    /// The endpoint did not answer within the per-request timeout.
    Timeout,
    /// The endpoint answered with a JSON-RPC error that is not one of the benign
    /// conditions recognised by the caller.
    Rpc,
    /// The endpoint does not have the requested height yet (it lags behind, or the block
    /// is stored but not yet executed). Retrying later or elsewhere can succeed.
    NotYetAvailable,
    /// The endpoint answered, but the answer contradicts itself or the request (e.g. a
    /// block whose transaction count differs from its result count).
    Inconsistent,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Transport => "transport error",
            FailureKind::Timeout => "timeout",
            FailureKind::Rpc => "RPC error",
            FailureKind::NotYetAvailable => "not yet available",
            FailureKind::Inconsistent => "inconsistent answer",
        })
    }
}

/// One failed attempt against one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFailure {
    /// The endpoint URL as configured.
    pub endpoint: String,
    /// The class of failure.
    pub kind: FailureKind,
    /// Human-readable detail (the RPC error text, the transport error...).
    pub message: String,
}

impl fmt::Display for EndpointFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.endpoint, self.kind, self.message)
    }
}

/// Every configured endpoint was tried once for an operation and none answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{operation} failed on every endpoint: {}", summary(.failures))]
pub struct AllEndpointsFailed {
    /// The RPC operation, e.g. `broadcast_tx_sync`.
    pub operation: &'static str,
    /// One entry per attempt, in the order tried.
    pub failures: Vec<EndpointFailure>,
}

impl AllEndpointsFailed {
    /// True when at least one endpoint answered that the requested height does not exist
    /// yet, i.e. the data is expected to appear later rather than being lost.
    pub fn any_not_yet_available(&self) -> bool {
        self.failures
            .iter()
            .any(|f| f.kind == FailureKind::NotYetAvailable)
    }
}

fn summary(failures: &[EndpointFailure]) -> String {
    if failures.is_empty() {
        return "no endpoint configured".to_owned();
    }
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The order in which `n` endpoints are tried when the last healthy one is `preferred`:
/// the preferred one first, then the following ones, wrapping around. Every endpoint
/// appears exactly once.
pub fn attempt_order(preferred: usize, n: usize) -> impl Iterator<Item = usize> {
    let start = if n == 0 { 0 } else { preferred % n };
    (0..n).map(move |i| (start + i) % n)
}

/// The endpoint list and the memory of the last healthy one, shared by clones of a client.
#[derive(Debug)]
pub(crate) struct Rotation {
    preferred: AtomicUsize,
    len: usize,
}

impl Rotation {
    pub(crate) fn new(len: usize) -> Self {
        Rotation {
            preferred: AtomicUsize::new(0),
            len,
        }
    }

    pub(crate) fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_healthy(&self, index: usize) {
        self.preferred.store(index, Ordering::Relaxed);
    }

    /// Tries `attempt(i)` for each endpoint index in [`attempt_order`] until one succeeds.
    /// The successful endpoint becomes the preferred one. `names` gives the endpoint
    /// names used in the failure report (indexed like the endpoints).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        names: &[String],
        mut attempt: F,
    ) -> Result<(T, usize), AllEndpointsFailed>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<T, EndpointFailure>>,
    {
        let mut failures = Vec::new();
        for index in attempt_order(self.preferred(), self.len) {
            match attempt(index).await {
                Ok(answer) => {
                    if index != self.preferred() {
                        tracing::info!(
                            operation,
                            endpoint = names.get(index).map(String::as_str).unwrap_or("?"),
                            "switched to endpoint"
                        );
                    }
                    self.mark_healthy(index);
                    return Ok((answer, index));
                }
                Err(failure) => {
                    tracing::warn!(
                        operation,
                        endpoint = %failure.endpoint,
                        kind = %failure.kind,
                        error = %failure.message,
                        "endpoint attempt failed, trying the next one"
                    );
                    failures.push(failure);
                }
            }
        }
        Err(AllEndpointsFailed {
            operation,
            failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://node{i}:26657")).collect()
    }

    fn fail(name: &str, kind: FailureKind) -> EndpointFailure {
        EndpointFailure {
            endpoint: name.to_owned(),
            kind,
            message: "boom".into(),
        }
    }

    #[test]
    fn order_starts_at_preferred_and_wraps() {
        assert_eq!(attempt_order(0, 3).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(attempt_order(2, 4).collect::<Vec<_>>(), vec![2, 3, 0, 1]);
        assert_eq!(attempt_order(7, 3).collect::<Vec<_>>(), vec![1, 2, 0]);
        assert_eq!(attempt_order(0, 1).collect::<Vec<_>>(), vec![0]);
        assert_eq!(attempt_order(5, 0).count(), 0);
    }

    #[tokio::test]
    async fn failover_tries_each_once_and_remembers_the_healthy_one() {
        let names = names(4);
        let rotation = Rotation::new(4);
        let mut tried = Vec::new();
        // Endpoints 0 and 1 are down, 2 answers.
        let (answer, index) = rotation
            .run("op", &names, |i| {
                tried.push(i);
                let name = names[i].clone();
                async move {
                    if i < 2 {
                        Err(fail(&name, FailureKind::Transport))
                    } else {
                        Ok(i * 10)
                    }
                }
            })
            .await
            .expect("endpoint 2 answers");
        assert_eq!((answer, index), (20, 2));
        assert_eq!(tried, vec![0, 1, 2]);
        assert_eq!(rotation.preferred(), 2);

        // Next time starts at 2; if 2 dies, 3 is next, then it wraps.
        let mut tried = Vec::new();
        let (_, index) = rotation
            .run("op", &names, |i| {
                tried.push(i);
                let name = names[i].clone();
                async move {
                    if i == 2 || i == 3 {
                        Err(fail(&name, FailureKind::Timeout))
                    } else {
                        Ok(())
                    }
                }
            })
            .await
            .expect("endpoint 0 answers");
        assert_eq!(tried, vec![2, 3, 0]);
        assert_eq!(index, 0);
        assert_eq!(rotation.preferred(), 0);
    }

    #[tokio::test]
    async fn all_failing_reports_every_attempt_and_keeps_preference() {
        let names = names(3);
        let rotation = Rotation::new(3);
        rotation.mark_healthy(1);
        let err = rotation
            .run("status", &names, |i| {
                let name = names[i].clone();
                async move {
                    Err::<(), _>(fail(
                        &name,
                        if i == 2 {
                            FailureKind::NotYetAvailable
                        } else {
                            FailureKind::Transport
                        },
                    ))
                }
            })
            .await
            .expect_err("all down");
        assert_eq!(err.operation, "status");
        let order: Vec<_> = err.failures.iter().map(|f| f.endpoint.clone()).collect();
        assert_eq!(
            order,
            vec![names[1].clone(), names[2].clone(), names[0].clone()]
        );
        assert!(err.any_not_yet_available());
        assert_eq!(rotation.preferred(), 1);
        assert!(err.to_string().contains("status failed on every endpoint"));
    }
}
