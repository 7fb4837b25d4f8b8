#!/usr/bin/python3
"""A libsrtp peer for the interop test, through Debian's python3-pylibsrtp.

Reads one JSON request on stdin:
  {"suite": "AES_CM_128_HMAC_SHA1_80" | "AES_CM_128_HMAC_SHA1_32",
   "key": "<hex master key||salt, 30 octets>",
   "op": "protect" | "unprotect" | "protect_rtcp" | "unprotect_rtcp",
   "packets": ["<hex>", ...]}
and writes {"results": [{"ok": "<hex>"} | {"error": "<libsrtp's reason>"}, ...]}.
One libsrtp session handles the whole list, in order, so rollover and replay
state carry from packet to packet as on a real stream. Test keys only.
"""
import json
import sys

import pylibsrtp

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


def main() -> None:
    request = json.load(sys.stdin)
    op = request["op"]
    outbound = op.startswith("protect")
    policy = pylibsrtp.Policy(
        key=bytes.fromhex(request["key"]),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=PROFILES[request["suite"]],
    )
    session = pylibsrtp.Session(policy=policy)
    process = getattr(session, op)
    results = []
    for packet in request["packets"]:
        try:
            results.append({"ok": bytes(process(bytes.fromhex(packet))).hex()})
        except pylibsrtp.Error as err:
            results.append({"error": str(err)})
    json.dump({"results": results, "version": pylibsrtp.__version__}, sys.stdout)


if __name__ == "__main__":
    main()
