//! Helpers shared by the protocol's integration tests.

use pledge_protocol::ledger::RuleError;

/// The auditor's failure kind for a rule error (SPEC §15, R-AUDIT-6…R-AUDIT-11, R-AUDIT-15).
pub fn audit_kind(e: &RuleError) -> &'static str {
    match e {
        RuleError::BadToken => "bad_token",
        RuleError::BadPledgeSignature => "bad_pledge_signature",
        RuleError::DoubleSpend => "duplicate_nullifier",
        RuleError::UnknownCampaign | RuleError::CampaignClosed => "outside_open_window",
        RuleError::CampaignExists => "duplicate_campaign",
        RuleError::ThresholdOutOfRange => "threshold_out_of_range",
        RuleError::UnknownPledge => "unknown_pledge",
        RuleError::Withdrawn => "after_withdrawal",
        RuleError::BadSequence { .. } => "bad_sequence",
        RuleError::TallyMismatch => "closing_tally_mismatch",
        RuleError::MorePledgesThanTokens { .. } => "more_pledges_than_tokens",
        RuleError::BadUpdateNumber { .. }
        | RuleError::DeadlineNotLater
        | RuleError::DeadlineTooLate
        | RuleError::TooManyLanguages => "bad_update",
        _ => "rule_violation",
    }
}
