//! Arbitrary bytes as one request frame body: decoding must return a request
//! or a reason to close, never panic or run away with memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = broker::protocol::decode::decode(bytes::BytesMut::from(data));
});
