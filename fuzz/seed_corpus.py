#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ from protocol/tests/vectors/*.json.

Run from anywhere: python3 fuzz/seed_corpus.py. Seeds are named after the
vector they come from; existing files are overwritten with the same bytes, so
running it twice changes nothing.
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
VEC = ROOT.parent / "protocol" / "tests" / "vectors"
OUT = ROOT / "corpus"
ISSUER_KEY_BYTES = 342  # SPKI of an RSA-2048 PSS key (0x30 0x82 0x01 0x52 + 338)


def load(name):
    return json.loads((VEC / name).read_text())


def put(target, name, data):
    if data is None:  # a vector without this field
        return
    if isinstance(data, str):
        data = data.encode()
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80]
    (d / safe).write_bytes(data)


def main():
    # Entries, and campaign definitions cut out of CampaignOpened entries.
    for e in load("entries.json")["entries"]:
        b = bytes.fromhex(e["entry"])
        put("entry", e["name"], b)
        if b[1] == 1:
            put("campaign", e["name"], b[2:-ISSUER_KEY_BYTES])
        # bundles: a 1-entry bundle and a 2-entry bundle of this entry
        n = len(b).to_bytes(2, "big")
        put("bundle", "one_" + e["name"], b"\x01" + n + b)
        put("bundle", "two_" + e["name"], b"\x02" + n + b + n + b)
    for c in load("entry_failures.json")["cases"][:40]:
        put("entry", c["name"], bytes.fromhex(c.get("entry") or ""))
    # Campaign updates (CampaignUpdated, kind 7): the valid ones and the
    # failure cases (SPEC R-ENTRY-7..9).
    upd = load("campaign_updates.json")
    for e in upd["entries"]:
        if bytes.fromhex(e["entry"])[1] == 7:
            put("entry", e["name"], bytes.fromhex(e["entry"]))
    for c in load("campaign_update_failures.json")["cases"]:
        put("entry", c["name"], bytes.fromhex(c.get("entry") or ""))
    # Sealed campaigns' entries (kinds 2 and 3 with sealed terms, 8, 9, 10,
    # 11, a sealed CampaignOpened) and one defect per decoder check (SPEC
    # R-SEAL-61), so the entry target starts inside the sealed decoders.
    for e in load("sealed_entries.json")["entries"]:
        put("entry", e["name"], bytes.fromhex(e["entry"]))
    for c in load("sealed_entry_failures.json")["cases"]:
        put("entry", c["name"], bytes.fromhex(c.get("entry") or ""))
    for c in load("c2sp_tlog_tiles_bad_bundles.json")["cases"]:
        put("bundle", c["name"], bytes([c["width"] % 256]) + bytes.fromhex(c.get("bundle") or ""))

    # Signed notes, checkpoints.
    for v in load("c2sp_checkpoint.json")["vectors"]:
        put("checkpoint", v["name"], v.get("body"))
        if "note" in v:
            put("signed_note", v["name"], v.get("note"))
    for v in load("c2sp_checkpoint_failures.json")["vectors"]:
        put("checkpoint" if v["kind"] == "body" else "signed_note", v["name"], v.get("input"))
    for v in load("c2sp_signed_note.json")["vectors"]:
        if "note" in v:
            put("signed_note", v["name"], v.get("note"))
    for v in load("c2sp_signed_note_failures.json")["vectors"][:40]:
        put("signed_note", v["name"], bytes.fromhex(v.get("input_hex") or ""))
    go = load("c2sp_signed_note_go.json")
    put("signed_note", "go_signed_by_peter", go["signed_by_peter"])

    # Cosignatures and witness requests.
    cs = load("c2sp_cosignature.json")
    put("signed_note", "fully_cosigned", cs["fully_cosigned_note"])
    for v in cs["vectors"]:
        put("signed_note", v["name"], v.get("cosigned_note"))
        put("add_checkpoint", "line_" + v["name"], (v.get("cosignature_line") or "") + "\n")
    w = load("c2sp_witness.json")
    for v in w["vectors"]:
        put("add_checkpoint", v["name"], v.get("input"))
    for v in w["failures"]:
        put("add_checkpoint", v["name"], v.get("input"))
    put("add_checkpoint", "response", w["response"]["body"])
    put("add_checkpoint", "size_body", "20852014\n")

    # Receipts.
    for v in load("receipt.json")["vectors"]:
        put("receipt", v["name"], v.get("receipt"))
    for v in load("receipt_failures.json")["vectors"]:
        if v.get("kind") == "parse":
            put("receipt", v["name"], v.get("input"))

    # Tallies.
    for v in load("tally_statement_valid.json")["vectors"]:
        put("tally_statement", v["name"], v.get("body"))
        put("tally_snapshot", v["name"], bytes.fromhex(v.get("binary_hex") or ""))
    for f in sorted(VEC.glob("tally_*.json")):
        for c in json.loads(f.read_text()).get("cases", []):
            put("tally_statement", f.stem + "_" + c["name"], c.get("text"))

    # Conditional funding: terms (mode 0), a terms sequence (mode 1),
    # snapshots (mode 2) and statements (mode 3) of funding.json.
    fv = load("funding.json")
    seq = b""
    for t in fv["terms"]:
        put("funding", "terms_" + t["terms"]["kind"], b"\x00" + bytes.fromhex(t["encoding"]))
        seq += bytes.fromhex(t["encoding"])
    put("funding", "sequence", b"\x01" + seq)
    for c in fv["tallies"]:
        put("funding", "snapshot_" + c["name"], b"\x02" + bytes.fromhex(c["snapshot"]))
        put("funding", "statement_" + c["name"], b"\x03" + c["statement"].encode())
    for d in fv["definitions"]:
        put("campaign", "funding_" + d["name"], bytes.fromhex(d["encoding"]))

    # Sealed campaigns: terms (mode 0; valid and failure vectors), a
    # decryption share followed by its bucket's aggregate ciphertext (mode
    # 1), keys (mode 2) of sealed_kat.json.
    sk = load("sealed_kat.json")
    for c in sk["valid"]:
        put("sealed", "terms_" + c["name"], b"\x00" + bytes.fromhex(c["terms"]))
        put("sealed", "key_" + c["name"], b"\x02" + bytes.fromhex(c["joint_key"]))
    for c in sk["failures"]:
        if len(c["terms"]) <= 2 * 2000:
            put("sealed", "bad_" + c["name"], b"\x00" + bytes.fromhex(c["terms"]))
    d = sk["decryption"]
    for c in d["share_checks"]:
        ct = bytes.fromhex(d["aggregate"][c["bucket"]])
        put("sealed", "share_" + c["name"], b"\x01" + bytes.fromhex(c["share"]) + ct)

    # Tile paths.
    p = load("c2sp_tlog_tiles_paths.json")
    for t in p["tiles"] + p["bundles"]:
        put("tile_path", t.get("path"), t.get("path"))
    for c in load("c2sp_tlog_tiles_bad_paths.json")["cases"]:
        put("tile_path", "bad_" + c["name"], c.get("path"))

    # Issuer keys and blinding states.
    tk = load("tokens.json")
    put("issuer_key", "tokens_issuer", bytes.fromhex(tk["issuer_spki"]))
    put("issuer_key", "rfc9578", bytes.fromhex(load("rfc9578.json")["vectors"][0]["pk_spki"]))
    for v in tk["vectors"][:2]:
        put("issuer_key", "state_" + v["name"], bytes.fromhex(v.get("blinding_state") or ""))
    for k in load("token_failures.json")["public_keys"]:
        put("issuer_key", k["name"], bytes.fromhex(k.get("spki") or ""))

    # Server JSON bodies: first byte picks the endpoint (0 tokens, 1 entry,
    # 2 new campaign, 3 invites).
    entry = bytes.fromhex(load("entries.json")["entries"][1]["entry"])
    import base64
    b64 = base64.b64encode
    cid = tk["vectors"][0]["campaign_id"]
    blinded = b64(bytes.fromhex(tk["vectors"][0]["blinded_msg"])).decode()
    put("server_json", "tokens_open", b"\x00" + json.dumps(
        {"attestation": {"kind": "open"},
         "requests": [{"campaign_id": cid, "blinded_msg": blinded}]}).encode())
    put("server_json", "tokens_invite", b"\x00" + json.dumps(
        {"attestation": {"kind": "invite", "code": "abcd-efgh"}, "requests": []}).encode())
    put("server_json", "entry", b"\x01" + json.dumps({"entry": b64(entry).decode()}).encode())
    put("server_json", "campaign", b"\x02" + json.dumps(
        {"title": "t", "text": "x", "action": "a", "deadline": 4102444800, "goal": 3,
         "threshold_min": 1, "threshold_max": 10, "attester": {"kind": "open"}}).encode())
    put("server_json", "invites", b"\x03" + json.dumps({"group": "g", "count": 2}).encode())
    put("server_json", "email_code", b"\x04" + json.dumps(
        {"address": "jane@union.example", "campaigns": [cid]}).encode())
    put("server_json", "tokens_email", b"\x00" + json.dumps(
        {"attestation": {"kind": "email", "address": "jane@union.example", "code": "01234567"},
         "requests": [{"campaign_id": cid, "blinded_msg": blinded}]}).encode())
    put("server_json", "campaign_email", b"\x02" + json.dumps(
        {"title": "t", "action": "a", "deadline": 4102444800, "goal": 3,
         "threshold_min": 1, "threshold_max": 10,
         "attester": {"kind": "email", "domains": ["union.example"]}}).encode())


if __name__ == "__main__":
    main()
