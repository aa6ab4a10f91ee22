//! Fuzz `CampaignDefinition::decode`: never panics; decode∘encode identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pledge_protocol::campaign::CampaignDefinition;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = CampaignDefinition::decode(data) {
        assert_eq!(d.encode(), data, "decode∘encode identity");
    }
});
