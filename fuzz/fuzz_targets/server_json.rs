//! Fuzz the server's JSON request bodies through the decoder its handlers use
//! (`pledge_server::http::decode_request_body`): the first byte picks the
//! endpoint, the rest is the body. Never panics; the same input always gets the
//! same answer; an accepted body stays accepted with its bytes unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_server::http::{RequestBody, decode_request_body};

fuzz_target!(|data: &[u8]| {
    let Some((&k, body)) = data.split_first() else {
        return;
    };
    let kind = match k % 5 {
        0 => RequestBody::Tokens,
        1 => RequestBody::Entry,
        2 => RequestBody::NewCampaign,
        3 => RequestBody::NewInvites,
        _ => RequestBody::EmailCode,
    };
    let first = decode_request_body(kind, body).map_err(|e| e.status());
    let second = decode_request_body(kind, body).map_err(|e| e.status());
    assert_eq!(first, second, "decoding is deterministic");
    if let Err(status) = first {
        // Decoding alone may only refuse the request as the client's fault.
        assert_eq!(status.as_u16(), 400, "decode errors are 400");
    }
});
