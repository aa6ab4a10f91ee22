//! `pledged` binary entry point.

fn main() {
    eprintln!(
        "pledged: the HTTP service is not built yet (protocol v{}); see README.md",
        pledge_server::PROTOCOL_VERSION
    );
    std::process::exit(2);
}
