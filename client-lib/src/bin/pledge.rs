//! `pledge` command-line entry point.

fn main() {
    eprintln!(
        "pledge: the client is not built yet (protocol v{}); see README.md",
        pledge_client::PROTOCOL_VERSION
    );
    std::process::exit(2);
}
