//! Atom feeds (RFC 4287) of the campaigns: one per campaign and one for the
//! campaign list, so that anyone can follow a campaign from a feed reader
//! without telling the server who they are. SPEC R-API-24 … R-API-27.
//!
//! A feed is built from what the log already publishes (the definition, the
//! phase, the final tally) and from a small per-campaign [`FeedHistory`]:
//! the hour at which the campaign opened and the hour at which its active
//! count `A` first reached each *step* ([`is_step`]: 1, 2, 5, 10, 20, 50, …)
//! and its goal. Nothing finer is kept or published: no per-pledge time, no
//! minute, no second. The history is committed with the batch that changed
//! it (store metadata `feed/<campaign id>`), so it is as durable as the log;
//! it holds hour numbers (hours since 1970-01-01T00:00Z), never seconds, so
//! it cannot carry a finer time by mistake.

use std::fmt::Write as _;

use pledge_protocol::hash::CampaignId;
use serde::{Deserialize, Serialize};

use crate::log_time::civil_from_days;

/// The content type of every feed (SPEC R-API-25).
pub const ATOM: &str = "application/atom+xml; charset=utf-8";

/// `Cache-Control` of every feed (SPEC R-API-25): shared caches may keep a
/// feed five minutes, so a reader's poll need not reach the server at all.
pub const FEED_CACHE: &str = "public, max-age=300";

/// Every time a feed states is a multiple of this (one hour, SPEC R-API-26).
pub const GRANULARITY: u64 = 3600;

/// An hour number: hours since 1970-01-01T00:00Z.
pub type Hour = u64;

/// The list feed carries at most this many entries, the newest (R-API-24).
pub const MAX_LIST_ENTRIES: usize = 200;

/// Store metadata key of a campaign's feed history.
pub fn history_meta(id: &CampaignId) -> Vec<u8> {
    format!("feed/{}", id.to_hex()).into_bytes()
}

/// The hour `secs` (Unix seconds) falls in (SPEC R-API-26).
pub fn hour_of(secs: u64) -> Hour {
    secs / GRANULARITY
}

/// The first second of hour `h`.
pub fn start_of(h: Hour) -> u64 {
    h.saturating_mul(GRANULARITY)
}

/// Whether `a` is a step of the activation rule (SPEC R-API-26): `1`, `2` or
/// `5` times a power of ten. The feed says when `A` first reached each step,
/// not every change of `A`: it is a log-scale record, not a thermometer.
pub fn is_step(a: u64) -> bool {
    if a == 0 {
        return false;
    }
    let mut m = a;
    while m.is_multiple_of(10) {
        m /= 10;
    }
    matches!(m, 1 | 2 | 5)
}

/// The steps `s` with `from < s ≤ to`, ascending.
pub fn steps_between(from: u64, to: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut decade: u64 = 1;
    loop {
        for k in [1, 2, 5] {
            let Some(s) = decade.checked_mul(k) else {
                return out;
            };
            if s > to {
                return out;
            }
            if s > from {
                out.push(s);
            }
        }
        match decade.checked_mul(10) {
            Some(d) => decade = d,
            None => return out,
        }
    }
}

/// One step reached: the step and the hour `A` first reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The step (a value of `A`, see [`is_step`]).
    pub active: u64,
    /// The hour.
    pub hour: Hour,
}

/// What a campaign's feed needs beyond the log: coarse times of its opening,
/// of the first time `A` reached each step and of the first time `A` reached
/// the goal. No entry is ever removed: a step stays reached when `A` falls
/// back (withdrawals), and is not reported again when `A` rises past it
/// again. At most one record per step, so about 50 per campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedHistory {
    /// The hour the CampaignOpened entry was integrated.
    pub opened: Hour,
    /// Steps reached, ascending.
    pub steps: Vec<Step>,
    /// The hour `A` first reached the goal, if it has.
    pub goal: Option<Hour>,
}

impl FeedHistory {
    /// The history of a campaign opened at `now`: nothing reached yet.
    pub fn opened(now: u64) -> Self {
        Self {
            opened: hour_of(now),
            steps: Vec::new(),
            goal: None,
        }
    }

    /// A history for a campaign the server held before it kept feed
    /// histories: every step up to `active`, and the goal if reached, all
    /// dated `at` (SPEC R-API-26 says what that date then means).
    pub fn reconstructed(active: u64, goal: u32, at: u64) -> Self {
        let h = Self::opened(at);
        h.advance(active, goal, at).unwrap_or(h)
    }

    /// The highest step reached so far (0 for none).
    pub fn highest_step(&self) -> u64 {
        self.steps.last().map_or(0, |s| s.active)
    }

    /// The history after `A` became `active` at `now`: `None` when nothing
    /// new was reached.
    pub fn advance(&self, active: u64, goal: u32, now: u64) -> Option<Self> {
        let hour = hour_of(now);
        let new = steps_between(self.highest_step(), active);
        let goal_now = self.goal.is_none() && active >= u64::from(goal);
        if new.is_empty() && !goal_now {
            return None;
        }
        let mut next = self.clone();
        next.steps
            .extend(new.into_iter().map(|s| Step { active: s, hour }));
        if goal_now {
            next.goal = Some(hour);
        }
        Some(next)
    }
}

/// How a closed campaign ended: its final tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The final active count.
    pub active: u64,
    /// The final number of live pledges.
    pub live: u64,
}

/// One campaign, as its feeds show it.
#[derive(Debug, Clone)]
pub struct FeedCampaign<'a> {
    /// The campaign.
    pub id: CampaignId,
    /// Its definition's title, text and action (hostile text: escaped here).
    pub title: &'a str,
    /// Its definition's text.
    pub text: &'a str,
    /// Its definition's action.
    pub action: &'a str,
    /// Its goal.
    pub goal: u32,
    /// Its effective deadline (Unix seconds, SPEC R-CAMP-8).
    pub deadline: u64,
    /// The definition's deadline when an update extended it (R-API-34).
    pub original_deadline: Option<u64>,
    /// Its feed history.
    pub history: &'a FeedHistory,
    /// Its final tally, once the CampaignClosed entry is in the log.
    pub closed: Option<Outcome>,
}

/// One feed entry, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: String,
    title: String,
    summary: String,
    updated: u64,
    /// Ties of `updated` are ordered by this, later events first.
    rank: u64,
    campaign: String,
}

/// Characters XML 1.0 cannot carry (C0 controls but tab, newline and
/// carriage return; U+FFFE, U+FFFF) become U+FFFD; `& < > " '` become
/// entities. For text and attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `secs` as RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(secs: u64) -> String {
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `secs` as the date `YYYY-MM-DD` (UTC), for the entries' text.
fn date(secs: u64) -> String {
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The entry ids (SPEC R-API-27): stable, the same in both feeds and on
/// every mirror of the log, built from the campaign id, the kind of event
/// and (for a step) the step.
fn entry_id(c: &CampaignId, what: &str) -> String {
    format!("urn:pledge:campaign:{}:{what}", c.to_hex())
}

fn opened_entry(c: &FeedCampaign<'_>) -> Entry {
    let mut summary = String::new();
    if !c.text.is_empty() {
        summary.push_str(c.text);
        summary.push_str("\n\n");
    }
    let _ = write!(
        summary,
        "Action: {}. Goal: {} people activated by the deadline, {} UTC.",
        c.action,
        c.goal,
        rfc3339(c.deadline)
    );
    // SPEC R-API-24, R-CAMP-8: an extension is announced with the opening.
    if let Some(o) = c.original_deadline {
        let _ = write!(
            summary,
            " The deadline was extended from {} UTC by an update in the log.",
            rfc3339(o)
        );
    }
    Entry {
        id: entry_id(&c.id, "opened"),
        title: format!("Campaign opened: {}", c.title),
        summary,
        updated: start_of(c.history.opened),
        rank: 0,
        campaign: c.id.to_hex(),
    }
}

fn closed_entry(c: &FeedCampaign<'_>, o: Outcome) -> Entry {
    let reached = o.active >= u64::from(c.goal);
    let title = if reached {
        format!("Closed, goal reached: {}", c.title)
    } else {
        format!("Closed, goal not reached: {}", c.title)
    };
    let summary = format!(
        "The campaign closed at its deadline, {} UTC. Final active count: {} \
         (goal {}): {}. Live pledges: {}. The outcome is the CampaignClosed \
         entry of the log; a client proves it before acting on it.",
        rfc3339(c.deadline),
        o.active,
        c.goal,
        if reached {
            "the goal was reached, and every activated pledger is on"
        } else {
            "the goal was not reached"
        },
        o.live
    );
    Entry {
        id: entry_id(&c.id, "closed"),
        title,
        summary,
        updated: c.deadline,
        rank: u64::MAX,
        campaign: c.id.to_hex(),
    }
}

/// Every entry of one campaign, in no particular order.
fn campaign_entries(c: &FeedCampaign<'_>) -> Vec<Entry> {
    let goal = u64::from(c.goal);
    let mut out = vec![opened_entry(c)];
    for s in &c.history.steps {
        if s.active == goal && c.history.goal.is_some() {
            // The goal entry says it.
            continue;
        }
        out.push(Entry {
            id: entry_id(&c.id, &format!("active:{}", s.active)),
            title: format!("{} activated: {}", s.active, c.title),
            summary: format!(
                "The active count reached {} in the hour from {} UTC: {} people \
                 are activated, their condition met (goal {}). This feed reports \
                 the steps 1, 2, 5, 10, 20, 50, … the first time they are \
                 reached, not every pledge; the page shows the current tally.",
                s.active,
                rfc3339(start_of(s.hour)),
                s.active,
                c.goal
            ),
            updated: start_of(s.hour),
            rank: s.active,
            campaign: c.id.to_hex(),
        });
    }
    if let Some(at) = c.history.goal.map(start_of) {
        out.push(Entry {
            id: entry_id(&c.id, "goal"),
            title: format!("Goal reached: {}", c.title),
            summary: format!(
                "The active count reached the goal of {} in the hour from {} UTC. \
                 The campaign succeeds if it is still at least {} at the \
                 deadline, {} UTC.",
                c.goal,
                rfc3339(at),
                c.goal,
                rfc3339(c.deadline)
            ),
            updated: at,
            rank: goal,
            campaign: c.id.to_hex(),
        });
    }
    if let Some(o) = c.closed {
        out.push(closed_entry(c, o));
    }
    out
}

/// Newest first; ties in event order, later first.
fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        b.updated
            .cmp(&a.updated)
            .then(b.rank.cmp(&a.rank))
            .then(a.id.cmp(&b.id))
    });
}

/// Writes a feed. `updated` is the newest entry's time (the Unix epoch for a
/// feed without entries, so that an empty feed never changes).
fn write_feed(
    id: &str,
    title: &str,
    subtitle: &str,
    author: &str,
    self_href: &str,
    page_href: &str,
    entries: &[Entry],
) -> String {
    let updated = entries.iter().map(|e| e.updated).max().unwrap_or(0);
    let mut x = String::with_capacity(1024 + entries.len() * 768);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    let _ = writeln!(x, "  <id>{}</id>", escape(id));
    let _ = writeln!(x, "  <title type=\"text\">{}</title>", escape(title));
    let _ = writeln!(
        x,
        "  <subtitle type=\"text\">{}</subtitle>",
        escape(subtitle)
    );
    let _ = writeln!(x, "  <updated>{}</updated>", rfc3339(updated));
    let _ = writeln!(x, "  <author><name>{}</name></author>", escape(author));
    let _ = writeln!(
        x,
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>",
        escape(self_href)
    );
    let _ = writeln!(
        x,
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>",
        escape(page_href)
    );
    x.push_str("  <generator>pledged</generator>\n");
    for e in entries {
        x.push_str("  <entry>\n");
        let _ = writeln!(x, "    <id>{}</id>", escape(&e.id));
        let _ = writeln!(x, "    <title type=\"text\">{}</title>", escape(&e.title));
        let _ = writeln!(x, "    <updated>{}</updated>", rfc3339(e.updated));
        let _ = writeln!(
            x,
            "    <link rel=\"alternate\" type=\"text/html\" href=\"/c/{}\"/>",
            e.campaign
        );
        let _ = writeln!(
            x,
            "    <summary type=\"text\">{}</summary>",
            escape(&e.summary)
        );
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    x
}

/// The feed of one campaign (SPEC R-API-24): its opening, each step of `A`
/// first reached, the goal first reached, and its close with the outcome.
/// `origin` is the log's origin (the feed's author).
pub fn campaign_feed(origin: &str, c: &FeedCampaign<'_>) -> String {
    let mut entries = campaign_entries(c);
    sort(&mut entries);
    let hex = c.id.to_hex();
    write_feed(
        &format!("urn:pledge:campaign:{hex}"),
        c.title,
        &format!(
            "Goal: {} people activated by {} UTC. Conditional pledges: \
             \"I act if at least t people act, me included.\"",
            c.goal,
            rfc3339(c.deadline)
        ),
        origin,
        &format!("/v1/campaigns/{hex}/feed.atom"),
        &format!("/c/{hex}"),
        &entries,
    )
}

/// The feed of the campaign list (SPEC R-API-24): the opening and the close
/// of every campaign (the newest [`MAX_LIST_ENTRIES`]), with the same entry
/// ids as the campaigns' own feeds.
pub fn list_feed(origin: &str, campaigns: &[FeedCampaign<'_>]) -> String {
    let mut entries = Vec::new();
    for c in campaigns {
        entries.push(opened_entry(c));
        if let Some(o) = c.closed {
            entries.push(closed_entry(c, o));
        }
    }
    sort(&mut entries);
    entries.truncate(MAX_LIST_ENTRIES);
    write_feed(
        &format!("urn:pledge:log:{}", percent(origin)),
        &format!("Campaigns on {origin}"),
        &format!(
            "Campaigns opened and closed on the pledge log {origin}, newest first (on {}).",
            date(entries.iter().map(|e| e.updated).max().unwrap_or(0))
        ),
        origin,
        "/v1/feed.atom",
        "/",
        &entries,
    )
}

/// `s` with every byte outside `A–Z a–z 0–9 - . _ ~` percent-encoded, for a
/// URN's specific string.
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The feed view of a published campaign and its feed history (its Atom
/// feed, SPEC R-API-24 … R-API-27, and its ActivityPub Event and
/// activities, R-API-40 … R-API-47, are built from it).
pub fn campaign_view<'a>(
    id: CampaignId,
    c: &'a crate::ledger::CampaignView,
    history: &'a FeedHistory,
) -> FeedCampaign<'a> {
    let d = &c.definition;
    // After the close the statement is the final tally (R-TALLY-12); a
    // sealed campaign's statement has no counts to show (SPEC R-SEAL-83).
    let closed = match (
        c.closed_at,
        c.tally.as_deref().and_then(|t| t.live_active()),
    ) {
        (Some(_), Some((live, active))) => Some(Outcome { active, live }),
        _ => None,
    };
    FeedCampaign {
        id,
        title: d.title(),
        text: d.text(),
        action: d.action(),
        goal: d.goal(),
        // SPEC R-CAMP-8: a closed campaign is dated by its effective deadline.
        deadline: c.deadline(),
        original_deadline: (c.deadline() != d.deadline()).then_some(d.deadline()),
        history,
        closed,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const HOUR: u64 = GRANULARITY;
    /// 2026-12-06T10:00:00Z.
    const T0: u64 = 1_796_551_200;

    fn id(b: u8) -> CampaignId {
        CampaignId::from_hex(&format!("{b:02x}").repeat(32)).unwrap()
    }

    fn parse(xml: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("not well-formed: {e}\n{xml}"))
    }

    fn child_text<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
        n.children()
            .find(|c| c.has_tag_name(("http://www.w3.org/2005/Atom", name)))
            .map(|c| c.text().unwrap_or(""))
    }

    fn entries<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.root_element()
            .children()
            .filter(|c| c.has_tag_name(("http://www.w3.org/2005/Atom", "entry")))
            .collect()
    }

    #[test]
    fn the_step_rule_is_one_two_five() {
        let steps: Vec<u64> = (0..=1000).filter(|&a| is_step(a)).collect();
        assert_eq!(
            steps,
            [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
            "steps up to 1000"
        );
        assert_eq!(steps_between(0, 1000), steps);
        assert_eq!(steps_between(2, 49), [5, 10, 20]);
        assert_eq!(steps_between(5, 5), Vec::<u64>::new());
        // The largest A a tally can hold (2^53 − 1) gives a bounded list.
        let all = steps_between(0, (1 << 53) - 1);
        assert_eq!(all.len(), 48);
        assert!(all.iter().all(|&s| is_step(s)));
        // No overflow at the top of u64.
        assert_eq!(steps_between(0, u64::MAX).len(), 58);
        assert!(!is_step(3) && !is_step(15) && !is_step(30) && is_step(50_000));
    }

    #[test]
    fn history_records_each_step_once_at_the_hour() {
        let h = FeedHistory::opened(T0 + 1234);
        assert_eq!(start_of(h.opened), T0);
        assert_eq!(h.advance(0, 25, T0 + 5), None);
        // A jumps from 0 to 7: steps 1, 2, 5 at once, dated by the hour.
        let h = h.advance(7, 25, T0 + HOUR + 59 * 60 + 59).unwrap();
        assert_eq!(
            h.steps,
            [1, 2, 5].map(|s| Step {
                active: s,
                hour: T0 / HOUR + 1
            })
        );
        assert_eq!(h.goal, None);
        // A falls back and rises again past 5: nothing new.
        assert_eq!(h.advance(3, 25, T0 + 2 * HOUR), None);
        assert_eq!(h.advance(9, 25, T0 + 2 * HOUR), None);
        // 10, then the goal (25) with 20 on the way.
        let h = h.advance(10, 25, T0 + 2 * HOUR).unwrap();
        assert_eq!(h.highest_step(), 10);
        let h = h.advance(26, 25, T0 + 3 * HOUR + 1).unwrap();
        assert_eq!(h.highest_step(), 20);
        assert_eq!(h.goal, Some(T0 / HOUR + 3));
        // The stored form round-trips and refuses unknown fields.
        let json = serde_json::to_vec(&h).unwrap();
        assert_eq!(serde_json::from_slice::<FeedHistory>(&json).unwrap(), h);
        assert!(
            serde_json::from_str::<FeedHistory>(
                r#"{"opened":0,"steps":[],"goal":null,"pledges":[]}"#
            )
            .is_err()
        );
        // The stored form holds hour numbers, not seconds.
        let text = String::from_utf8(json).unwrap();
        assert!(
            text.contains(&format!("\"goal\":{}", T0 / HOUR + 3)),
            "{text}"
        );
        assert!(!text.contains(&T0.to_string()), "{text}");
        let r = FeedHistory::reconstructed(12, 10, T0 + 77);
        assert_eq!(r.highest_step(), 10);
        assert_eq!((r.opened, r.goal), (T0 / HOUR, Some(T0 / HOUR)));
    }

    fn hostile_title() -> &'static str {
        "Strike <now> & \"always\" 'maybe' ]]> \u{1}\u{FFFF} </title><script>x</script>"
    }

    #[test]
    fn hostile_text_is_escaped_and_the_feed_is_well_formed() {
        let h = FeedHistory::opened(T0).advance(3, 10, T0 + HOUR).unwrap();
        let c = FeedCampaign {
            id: id(0xab),
            title: hostile_title(),
            text: "Line one & <b>two</b>\nthree",
            action: "walk \"out\" <together>",
            goal: 10,
            deadline: T0 + 30 * 86_400,
            original_deadline: None,
            history: &h,
            closed: None,
        };
        let xml = campaign_feed("example.com/log & <co>", &c);
        let doc = parse(&xml);
        let feed = doc.root_element();
        assert!(feed.has_tag_name(("http://www.w3.org/2005/Atom", "feed")));
        // The title comes back exactly, but for the characters XML cannot hold.
        let want = hostile_title().replace(['\u{1}', '\u{FFFF}'], "\u{FFFD}");
        assert_eq!(child_text(feed, "title"), Some(want.as_str()));
        assert!(!xml.contains("<script>"), "{xml}");
        let es = entries(&doc);
        // Opened, steps 1 and 2.
        assert_eq!(es.len(), 3, "{xml}");
        let opened = es
            .iter()
            .find(|e| child_text(**e, "id").unwrap().ends_with(":opened"))
            .unwrap();
        let summary = child_text(*opened, "summary").unwrap();
        assert!(
            summary.starts_with("Line one & <b>two</b>\nthree"),
            "{summary}"
        );
        assert!(summary.contains("walk \"out\" <together>"), "{summary}");
        let author = feed
            .descendants()
            .find(|n| n.has_tag_name(("http://www.w3.org/2005/Atom", "name")))
            .unwrap();
        assert_eq!(author.text(), Some("example.com/log & <co>"));
        // Every entry has an id, a title, an updated time on the hour.
        for e in &es {
            let u = child_text(*e, "updated").unwrap();
            assert!(u.ends_with(":00:00Z"), "{u}");
            assert!(
                child_text(*e, "id")
                    .unwrap()
                    .starts_with("urn:pledge:campaign:abab")
            );
        }
        // The list feed too.
        let xml = list_feed("o\"<&>", std::slice::from_ref(&c));
        let doc = parse(&xml);
        assert_eq!(entries(&doc).len(), 1);
        assert_eq!(
            child_text(doc.root_element(), "id"),
            Some("urn:pledge:log:o%22%3C%26%3E")
        );
    }

    #[test]
    fn entries_follow_the_rule_and_close_with_the_outcome() {
        let goal = 10;
        let h = FeedHistory::opened(T0)
            .advance(2, goal, T0 + HOUR)
            .unwrap()
            .advance(12, goal, T0 + 2 * HOUR)
            .unwrap();
        let deadline = T0 + 5 * HOUR + 17;
        let mut c = FeedCampaign {
            id: id(0x01),
            title: "T",
            text: "",
            action: "act",
            goal,
            deadline,
            original_deadline: None,
            history: &h,
            closed: None,
        };
        let ids = |xml: &str| -> Vec<String> {
            let doc = parse(xml);
            entries(&doc)
                .iter()
                .map(|e| {
                    let id = child_text(*e, "id").unwrap();
                    id.rsplit_once(&format!("{}:", "01".repeat(32)))
                        .unwrap()
                        .1
                        .to_owned()
                })
                .collect()
        };
        // Newest first; step 10 is the goal and appears once, as the goal.
        let open = campaign_feed("o", &c);
        assert_eq!(
            ids(&open),
            ["goal", "active:5", "active:2", "active:1", "opened"]
        );
        assert!(
            open.contains("<updated>2026-12-06T12:00:00Z</updated>\n  <author>"),
            "{open}"
        );
        // Closed, goal reached.
        c.closed = Some(Outcome {
            active: 11,
            live: 14,
        });
        let won = campaign_feed("o", &c);
        assert_eq!(ids(&won)[0], "closed");
        let doc = parse(&won);
        let closed = entries(&doc)[0];
        assert_eq!(child_text(closed, "title"), Some("Closed, goal reached: T"));
        assert_eq!(
            child_text(closed, "updated"),
            Some(rfc3339(deadline).as_str())
        );
        let s = child_text(closed, "summary").unwrap();
        assert!(
            s.contains("Final active count: 11 (goal 10)") && s.contains("Live pledges: 14"),
            "{s}"
        );
        // Closed below the goal (pledges withdrawn after it was reached).
        c.closed = Some(Outcome { active: 9, live: 9 });
        let lost = campaign_feed("o", &c);
        let doc = parse(&lost);
        assert_eq!(
            child_text(entries(&doc)[0], "title"),
            Some("Closed, goal not reached: T")
        );
        // The feed is a function of its inputs: same bytes twice (ETags).
        assert_eq!(campaign_feed("o", &c), lost);
        // The list feed has the opening and the close only.
        let list = list_feed("o", std::slice::from_ref(&c));
        assert_eq!(ids(&list), ["closed", "opened"]);
    }

    #[test]
    fn an_empty_list_feed_is_valid_and_stable() {
        let xml = list_feed("example.com/log", &[]);
        let doc = parse(&xml);
        assert!(entries(&doc).is_empty());
        assert_eq!(
            child_text(doc.root_element(), "updated"),
            Some("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(start_of(hour_of(951_827_696)), 951_825_600);
        assert_eq!(
            escape("a&b<c>\"'\u{7}"),
            "a&amp;b&lt;c&gt;&quot;&apos;\u{FFFD}"
        );
    }
}
