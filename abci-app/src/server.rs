//! The ABCI socket server: CometBFT's length-delimited protobuf protocol over TCP.
//!
//! tendermint-abci 0.41 ships a server too, but its decoder copies the whole receive buffer
//! for every message it takes out of it, which is quadratic when CometBFT pipelines many
//! requests (a mempool re-check sends one CheckTx per pending transaction, back to back), and
//! it flushes the socket after every response. This server keeps the tendermint-abci
//! [`Application`] trait and message types, reads through a buffer without copying it, and
//! flushes only when CometBFT asks (a `Flush` request) or when no further request is buffered,
//! so a pipelined batch is answered in one write.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::thread;

use prost::Message;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    request::Value as Req, response::Value as Res, Request, Response, ResponseException,
};
use tracing::{info, warn};

/// Largest request accepted: a block of transactions with CometBFT's default 21 MiB limit
/// fits with room to spare.
const MAX_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;
const BUFFER_BYTES: usize = 256 * 1024;

pub struct SocketServer<A> {
    listener: TcpListener,
    app: A,
}

impl<A: Application> SocketServer<A> {
    pub fn bind(addr: impl ToSocketAddrs, app: A) -> std::io::Result<Self> {
        Ok(SocketServer {
            listener: TcpListener::bind(addr)?,
            app,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until the listener fails; one thread per connection (CometBFT opens
    /// four: consensus, mempool, query, snapshot).
    pub fn listen(self) -> std::io::Result<()> {
        loop {
            let (stream, peer) = self.listener.accept()?;
            let app = self.app.clone();
            info!(%peer, "ABCI connection");
            thread::spawn(move || {
                if let Err(e) = serve_connection(stream, app) {
                    warn!(%peer, error = %e, "ABCI connection closed");
                }
            });
        }
    }
}

fn serve_connection<A: Application>(stream: TcpStream, app: A) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(BUFFER_BYTES, stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(BUFFER_BYTES, stream);
    let mut body = Vec::new();
    loop {
        let Some(len) = read_varint(&mut reader)? else {
            writer.flush()?;
            return Ok(());
        };
        if len > MAX_MESSAGE_BYTES {
            return Err(invalid(format!("request of {len} bytes exceeds the limit")));
        }
        body.resize(len as usize, 0);
        reader.read_exact(&mut body)?;
        let request = Request::decode(body.as_slice())
            .map_err(|e| invalid(format!("undecodable request: {e}")))?;
        let is_flush = matches!(request.value, Some(Req::Flush(_)));
        let response = dispatch(&app, request);
        let encoded = response.encode_length_delimited_to_vec();
        writer.write_all(&encoded)?;
        // Answer a pipelined batch with one write, but never leave CometBFT waiting.
        if is_flush || reader.buffer().is_empty() {
            writer.flush()?;
        }
    }
}

fn dispatch<A: Application>(app: &A, request: Request) -> Response {
    let value = match request.value {
        Some(Req::Echo(r)) => Res::Echo(app.echo(r)),
        Some(Req::Flush(_)) => Res::Flush(app.flush()),
        Some(Req::Info(r)) => Res::Info(app.info(r)),
        Some(Req::InitChain(r)) => Res::InitChain(app.init_chain(r)),
        Some(Req::Query(r)) => Res::Query(app.query(r)),
        Some(Req::CheckTx(r)) => Res::CheckTx(app.check_tx(r)),
        Some(Req::Commit(_)) => Res::Commit(app.commit()),
        Some(Req::ListSnapshots(_)) => Res::ListSnapshots(app.list_snapshots()),
        Some(Req::OfferSnapshot(r)) => Res::OfferSnapshot(app.offer_snapshot(r)),
        Some(Req::LoadSnapshotChunk(r)) => Res::LoadSnapshotChunk(app.load_snapshot_chunk(r)),
        Some(Req::ApplySnapshotChunk(r)) => Res::ApplySnapshotChunk(app.apply_snapshot_chunk(r)),
        Some(Req::PrepareProposal(r)) => Res::PrepareProposal(app.prepare_proposal(r)),
        Some(Req::ProcessProposal(r)) => Res::ProcessProposal(app.process_proposal(r)),
        Some(Req::ExtendVote(r)) => Res::ExtendVote(app.extend_vote(r)),
        Some(Req::VerifyVoteExtension(r)) => Res::VerifyVoteExtension(app.verify_vote_extension(r)),
        Some(Req::FinalizeBlock(r)) => Res::FinalizeBlock(app.finalize_block(r)),
        None => Res::Exception(ResponseException {
            error: "empty ABCI request".to_owned(),
        }),
    };
    Response { value: Some(value) }
}

/// Reads a protobuf varint; `None` at a clean end of stream.
fn read_varint(reader: &mut impl BufRead) -> std::io::Result<Option<u64>> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        match reader.read(&mut byte)? {
            0 if i == 0 => return Ok(None),
            0 => return Err(invalid("stream ended inside a length prefix".into())),
            _ => {}
        }
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(invalid("length prefix longer than 10 bytes".into()))
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_end_cleanly() {
        for n in [0u64, 1, 127, 128, 300, 1 << 20, u64::from(u32::MAX)] {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(n, &mut buf);
            let mut reader = BufReader::new(buf.as_slice());
            assert_eq!(read_varint(&mut reader).ok().flatten(), Some(n));
            assert_eq!(read_varint(&mut reader).ok().flatten(), None);
        }
        let mut truncated = BufReader::new(&[0x80u8][..]);
        assert!(read_varint(&mut truncated).is_err());
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        #[derive(Clone)]
        struct Echo;
        impl Application for Echo {}
        let server = SocketServer::bind("127.0.0.1:0", Echo).expect("bind");
        let addr = server.local_addr().expect("addr");
        thread::spawn(move || server.listen());
        let mut stream = TcpStream::connect(addr).expect("connect");
        let mut batch = Vec::new();
        for i in 0..500 {
            let request = Request {
                value: Some(Req::Echo(tendermint_proto::v0_38::abci::RequestEcho {
                    message: format!("m{i}"),
                })),
            };
            batch.extend(request.encode_length_delimited_to_vec());
        }
        batch.extend(
            Request {
                value: Some(Req::Flush(Default::default())),
            }
            .encode_length_delimited_to_vec(),
        );
        stream.write_all(&batch).expect("write");
        let mut reader = BufReader::new(stream);
        for i in 0..500 {
            let len = read_varint(&mut reader).expect("read").expect("len");
            let mut body = vec![0; len as usize];
            reader.read_exact(&mut body).expect("body");
            let response = Response::decode(body.as_slice()).expect("decode");
            match response.value {
                Some(Res::Echo(e)) => assert_eq!(e.message, format!("m{i}")),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
