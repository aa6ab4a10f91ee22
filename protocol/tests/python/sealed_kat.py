#!/usr/bin/env python3
"""A verifier of SPEC §17.1 (sealed terms, decryption shares, reveals)
written from SPEC.md alone, in plain Python 3 (no third-party module):
ristretto255 from RFC 9496, SHA-512 from hashlib. It reaches every verdict
of protocol/tests/vectors/sealed_kat.json (R-SEAL-29) and recomputes every
recorded challenge.

    python3 protocol/tests/python/sealed_kat.py

protocol/tests/sealed.rs runs it (`python_verifier_reaches_every_verdict`).
Prints one line per group of checks and exits non-zero on the first
disagreement. Pure-Python scalar multiplications: a few seconds.
"""
import hashlib
import json
import pathlib
import sys

# --- ristretto255 (RFC 9496 §4) --------------------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
INVSQRT_A_MINUS_D = 54469307008909316920995813868745141605393597292927456921205312896311721017578


def is_neg(x):
    return (x % P) & 1


def ct_abs(x):
    return (-x) % P if is_neg(x) else x % P


def sqrt_ratio_m1(u, v):
    u %= P
    v %= P
    r = (u * pow(v, 3, P)) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    check = v * r * r % P
    correct = check == u
    flipped = check == (-u) % P
    flipped_i = check == (-u * SQRT_M1) % P
    if flipped or flipped_i:
        r = SQRT_M1 * r % P
    return correct or flipped, ct_abs(r)


def decode(b):
    """RFC 9496 §4.3.1; None for any invalid or non-canonical encoding."""
    if len(b) != 32:
        return None
    s = int.from_bytes(b, "little")
    if s >= P or is_neg(s):
        return None
    ss = s * s % P
    u1 = (1 - ss) % P
    u2 = (1 + ss) % P
    u2_sqr = u2 * u2 % P
    v = (-(D * u1 * u1) - u2_sqr) % P
    was_square, invsqrt = sqrt_ratio_m1(1, v * u2_sqr)
    den_x = invsqrt * u2 % P
    den_y = invsqrt * den_x * v % P
    x = ct_abs(2 * s * den_x)
    y = u1 * den_y % P
    t = x * y % P
    if not was_square or is_neg(t) or y == 0:
        return None
    return (x, y, 1, t)


def encode(pt):
    """RFC 9496 §4.3.2."""
    x0, y0, z0, t0 = pt
    u1 = (z0 + y0) * (z0 - y0) % P
    u2 = x0 * y0 % P
    _, invsqrt = sqrt_ratio_m1(1, u1 * u2 * u2)
    den1 = invsqrt * u1 % P
    den2 = invsqrt * u2 % P
    z_inv = den1 * den2 * t0 % P
    if is_neg(t0 * z_inv):
        x, y, den_inv = y0 * SQRT_M1 % P, x0 * SQRT_M1 % P, den1 * INVSQRT_A_MINUS_D % P
    else:
        x, y, den_inv = x0, y0, den2
    if is_neg(x * z_inv):
        y = -y % P
    return ct_abs(den_inv * (z0 - y)).to_bytes(32, "little")


IDENTITY = (0, 1, 1, 0)


def add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * 2 * D * t2 % P
    d = z1 * 2 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def neg(pt):
    x, y, z, t = pt
    return (-x % P, y, z, -t % P)


def mul(k, pt):
    k %= L
    acc = IDENTITY
    while k:
        if k & 1:
            acc = add(acc, pt)
        pt = add(pt, pt)
        k >>= 1
    return acc


def eq(p1, p2):
    return encode(p1) == encode(p2)


G = decode(bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"))

# --- R-SEAL-1, R-SEAL-2 ------------------------------------------------------


def scalar(b):
    v = int.from_bytes(b, "little")
    return v if len(b) == 32 and v < L else None


def hs(*fields):
    h = hashlib.sha512()
    for f in fields:
        h.update(len(f).to_bytes(2, "big") + f)
    return int.from_bytes(h.digest(), "little") % L


def u16(n):
    return n.to_bytes(2, "big")


def u32(n):
    return n.to_bytes(4, "big")


def terms_len(b):
    return 1 + 64 * b + 224 * (b + 1)


# --- Sealed terms: R-SEAL-6, 7, 11, 12, 13, 14 --------------------------------


def context_fields(c):
    return [bytes.fromhex(c["campaign_id"]), bytes.fromhex(c["nullifier"]), u32(c["seq"]),
            bytes.fromhex(c["pledge_pk"])]


def verdict(ctx, k_bytes, campaign_b, t, challenges=None):
    if len(t) > terms_len(64):
        return "out_of_range"
    if not t:
        return "truncated"
    b = t[0]
    if not 1 <= b <= 64:
        return "out_of_range"
    if len(t) < terms_len(b):
        return "truncated"
    if len(t) > terms_len(b):
        return "trailing_bytes"
    body = t[1:]
    cts = []
    for i in range(b):
        c1, c2 = decode(body[64 * i:64 * i + 32]), decode(body[64 * i + 32:64 * i + 64])
        if c1 is None or c2 is None:
            return "malformed"
        cts.append((c1, c2))
    proofs = []
    for p in range(b + 1):
        pr = body[64 * b + 224 * p:64 * b + 224 * (p + 1)]
        comm = [decode(pr[32 * f:32 * f + 32]) for f in range(4)]
        sc = [scalar(pr[32 * f:32 * f + 32]) for f in range(4, 7)]
        if None in comm or None in sc:
            return "malformed"
        proofs.append((pr, comm, sc))
    if b != campaign_b:
        return "bucket_count_mismatch"
    k = decode(k_bytes)
    s1, s2 = IDENTITY, IDENTITY
    for c1, c2 in cts:
        s1, s2 = add(s1, c1), add(s2, c2)
    for p, (pr, comm, sc) in enumerate(proofs):
        if p < b:
            index, (c1, c2), ct = p, cts[p], body[64 * p:64 * p + 64]
        else:
            index, (c1, c2), ct = 0xFFFFFFFF, (s1, s2), encode(s1) + encode(s2)
        e = hs(b"pledge/v2/sealed-bit", *context_fields(ctx), k_bytes, u16(b), u32(index),
               ct[:32], ct[32:], pr[0:32], pr[32:64], pr[64:96], pr[96:128])
        if challenges is not None:
            challenges.append(e.to_bytes(32, "little").hex())
        cs = [sc[0], (e - sc[0]) % L]
        ss = [sc[1], sc[2]]
        for j in (0, 1):
            shifted = add(c2, neg(mul(j, G)))
            if not (eq(mul(ss[j], G), add(comm[2 * j], mul(cs[j], c1)))
                    and eq(mul(ss[j], k), add(comm[2 * j + 1], mul(cs[j], shifted)))):
                return f"invalid_bit_proof {p}" if p < b else "invalid_sum_proof"
    return "ok"


# --- Decryption shares: R-SEAL-21, 22, 23 -------------------------------------


def share_verdict(campaign, size, k_bytes, i, k_i_bytes, bucket, ct, share):
    if len(share) < 96:
        return "truncated"
    if len(share) > 96:
        return "trailing_bytes"
    d, c, s = decode(share[:32]), scalar(share[32:64]), scalar(share[64:])
    if d is None or c is None or s is None:
        return "malformed"
    k_i, c1 = decode(k_i_bytes), decode(ct[:32])
    a1 = add(mul(s, G), neg(mul(c, k_i)))
    a2 = add(mul(s, c1), neg(mul(c, d)))
    e = hs(b"pledge/v2/sealed-dleq", campaign, size.to_bytes(8, "big"), k_bytes, u16(i), k_i_bytes,
           u32(bucket), ct[:32], ct[32:], share[:32], encode(a1), encode(a2))
    return "ok" if e == c else "invalid_decryption_share"


# --- Reveals: R-SEAL-24, 25, 26 -----------------------------------------------


def reveal(dec, who, bound, sub=None):
    k = dec["threshold"]
    if len(who) < k:
        return "too_few_shares"
    if len(set(who)) != len(who):
        return "duplicate_trustee"
    used = who[:k]

    def lam(i):
        num, den = 1, 1
        for j in used:
            if j != i:
                num, den = num * j % L, den * (j - i) % L
        return num * pow(den, L - 2, L) % L

    pubs = {t["index"]: decode(bytes.fromhex(t["public_share"])) for t in dec["trustees"]}
    shares = {i + 1: row for i, row in enumerate(dec["shares"])}
    if sub:  # a non-trustee's public share and shares in place of a trustee's
        pubs[sub["index"]] = decode(bytes.fromhex(sub["public_share"]))
        shares[sub["index"]] = sub["shares"]
    interp = IDENTITY
    for i in used:
        interp = add(interp, mul(lam(i), pubs[i]))
    if encode(interp) != bytes.fromhex(dec["joint_key"]):
        return "public_shares_mismatch"
    counts = []
    for b, ct_hex in enumerate(dec["aggregate"]):
        m = decode(bytes.fromhex(ct_hex)[32:])
        for i in used:
            m = add(m, neg(mul(lam(i), decode(bytes.fromhex(shares[i][b])[:32]))))
        # Bounded discrete log: n·G for n = 0..=bound, never beyond.
        acc, found = IDENTITY, None
        for n in range(bound + 1):
            if eq(acc, m):
                found = n
                break
            acc = add(acc, G)
        if found is None:
            return "count_beyond_bound"
        counts.append(found)
    return counts


def main():
    path = pathlib.Path(__file__).resolve().parents[1] / "vectors" / "sealed_kat.json"
    v = json.loads(path.read_text())
    assert encode(G).hex() == v["generator"] and L.to_bytes(32, "little").hex() == v["group_order"]
    n = 0
    for c in v["valid"]:
        got = []
        r = verdict(c["context"], bytes.fromhex(c["joint_key"]), c["bucket_count"],
                    bytes.fromhex(c["terms"]), got)
        assert r == "ok", (c["name"], r)
        assert got == c["challenges"], c["name"]
        x = int.from_bytes(bytes.fromhex(c["secret_key"]), "little")
        t = bytes.fromhex(c["terms"])[1:]
        for i, m in enumerate(c["plaintext"]):
            c1, c2 = decode(t[64 * i:64 * i + 32]), decode(t[64 * i + 32:64 * i + 64])
            assert eq(add(c2, neg(mul(x, c1))), mul(m, G)), (c["name"], i)
        n += 1
    print(f"ok: {n} valid sealed terms verify, challenges and plaintexts as recorded")
    n = 0
    for c in v["failures"]:
        r = verdict(c["context"], bytes.fromhex(c["joint_key"]), c["campaign_bucket_count"],
                    bytes.fromhex(c["terms"]))
        assert r == c["expected"], (c["name"], r, c["expected"])
        n += 1
    print(f"ok: {n} failure vectors reach their verdicts")
    dec = v["decryption"]
    k_bytes = bytes.fromhex(dec["joint_key"])
    campaign = bytes.fromhex(dec["reveal_context"]["campaign_id"])
    pubs = {t["index"]: bytes.fromhex(t["public_share"]) for t in dec["trustees"]}
    # The aggregate is the sum of the pledges' ciphertexts (R-SEAL-17).
    agg = [(IDENTITY, IDENTITY)] * len(dec["aggregate"])
    for p in dec["pledges"]:
        t = bytes.fromhex(p["terms"])
        assert verdict(p["context"], k_bytes, 4, t) == "ok"
        agg = [(add(a1, decode(t[1 + 64 * i:33 + 64 * i])), add(a2, decode(t[33 + 64 * i:65 + 64 * i])))
               for i, (a1, a2) in enumerate(agg)]
    assert [(encode(a1) + encode(a2)).hex() for a1, a2 in agg] == dec["aggregate"]
    n = 0
    for c in dec["share_checks"]:
        ct = bytes.fromhex(dec["aggregate"][c["bucket"]])
        r = share_verdict(campaign, c["size"], k_bytes, c["trustee"], pubs[c["trustee"]], c["bucket"],
                          ct, bytes.fromhex(c["share"]))
        assert r == c["expected"], (c["name"], r, c["expected"])
        n += 1
    print(f"ok: {n} decryption shares reach their verdicts")
    for r in dec["reveals"]:
        sub = r.get("substitute")
        if sub:  # the substitute's shares are valid for its own public share
            for b, sh in enumerate(sub["shares"]):
                ct = bytes.fromhex(dec["aggregate"][b])
                assert share_verdict(campaign, dec["reveal_context"]["size"], k_bytes, sub["index"],
                                     bytes.fromhex(sub["public_share"]), b, ct, bytes.fromhex(sh)) == "ok"
        got = reveal(dec, r["trustees"], r["bound"], sub)
        assert got == r["expected"], (r, got)
    print(f"ok: {len(dec['reveals'])} reveals give the recorded counts or errors")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}")
        sys.exit(1)
