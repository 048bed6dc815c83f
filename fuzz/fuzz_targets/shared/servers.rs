//! The servers the server fuzz target drives, and how an input picks one and a route: shared
//! by `fuzz_targets/server_requests.rs` and bert-std's `tests/fuzz_regressions.rs`, which
//! replays that target's crashes.

use bert_std::server::{Task, POST_ROUTES};

/// One server per task, over the round-trip goldens' tiny models (folder names under
/// `bert-std/tests/goldens/roundtrip`).
pub const SERVERS: [(Task, &str); 7] = [
    (Task::Embed, "base"),
    (Task::FillMask, "pretrain"),
    (Task::Classify, "classify"),
    (Task::Rerank, "classify"),
    (Task::Ner, "ner"),
    (Task::Qa, "qa"),
    (Task::SparseEmbed, "pretrain"),
];

/// The server (an index into [`SERVERS`]) and the route an input's first byte picks.
pub fn pick(byte: u8) -> (usize, &'static str) {
    let server = usize::from(byte) % SERVERS.len();
    let route = POST_ROUTES[usize::from(byte / 8) % POST_ROUTES.len()];
    (server, route)
}
