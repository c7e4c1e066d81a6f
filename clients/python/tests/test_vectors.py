"""Checks the Python codec against proto/vectors/frames.json (PROTOCOL.md section 7)."""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # clients/python
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
VECTORS = os.path.join(REPO, "proto", "vectors", "frames.json")

from podrelay import protocol as p  # noqa: E402


def load():
    with open(VECTORS) as f:
        return json.load(f)


# The vectors are decoded as protocol version 3 (proto/vectors/README.md).
VECTORS_VERSION = p.PUBX_VERSION


class VectorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = load()
        cls.limit = cls.doc["max_frame_bytes"]

    def test_format(self):
        self.assertEqual(self.limit, 1024)
        names = [v["name"] for v in self.doc["valid"] + self.doc["malformed"]]
        self.assertEqual(len(names), len(set(names)), "vector names must be unique")
        for v in self.doc["valid"] + self.doc["malformed"]:
            self.assertEqual(v["hex"], v["hex"].lower())
        for m in self.doc["malformed"]:
            self.assertEqual(p.ERROR_CODES[m["error"]], m["code"], m["name"])

    def test_every_frame_type_covered(self):
        types = {v["frame"]["type"] for v in self.doc["valid"]}
        self.assertEqual(types, set(p.TYPE_NAMES.values()))

    def test_valid_decode(self):
        for v in self.doc["valid"]:
            with self.subTest(v["name"]):
                frames = p.Decoder(self.limit, version=VECTORS_VERSION).feed(bytes.fromhex(v["hex"]))
                self.assertEqual(len(frames), 1)
                self.assertEqual(p.frame_to_dict(frames[0]), v["frame"])
                self.assertEqual(frames[0], p.frame_from_dict(v["frame"]))

    def test_valid_encode(self):
        for v in self.doc["valid"]:
            with self.subTest(v["name"]):
                self.assertEqual(p.encode(p.frame_from_dict(v["frame"])).hex(), v["hex"])

    def test_encode_functions(self):
        # the typed helpers agree with the generic encoder
        for v in self.doc["valid"]:
            f = p.frame_from_dict(v["frame"])
            t = f.type
            enc = {
                "HELLO": lambda: p.encode_hello(f.client_name, f.auth_token, f.version),
                "PUB": lambda: p.encode_pub(f.request_id, f.channel, f.payload),
                "PUBX": lambda: p.encode_pubx(f.request_id, f.channel, f.payload),
                "SUB": lambda: p.encode_sub(f.request_id, f.channels),
                "UNSUB": lambda: p.encode_unsub(f.request_id, f.channels),
                "PSUB": lambda: p.encode_psub(f.request_id, f.patterns),
                "PUNSUB": lambda: p.encode_punsub(f.request_id, f.patterns),
                "PING": lambda: p.encode_ping(f.request_id),
                "WELCOME": lambda: p.encode_welcome(f.server_version, f.node_id,
                                                    f.max_frame_bytes, f.max_queue_bytes,
                                                    f.version),
                "MSG": lambda: p.encode_msg(f.channel, f.payload, f.pattern),
                "OK": lambda: p.encode_ok(f.request_id),
                "ERR": lambda: p.encode_err(f.request_id, f.code, f.message),
                "PONG": lambda: p.encode_pong(f.request_id),
                "GOAWAY": lambda: p.encode_goaway(f.code, f.message),
                "RSUB": lambda: p.encode_rsub(f.request_id, f.channel, f.since_id, f.epoch),
                "SMSG": lambda: p.encode_smsg(f.channel, f.id, f.payload),
                "PUBOK": lambda: p.encode_pubok(f.request_id, f.id),
                "RSUBOK": lambda: p.encode_rsubok(f.request_id, f.recovered, f.epoch,
                                                  f.last_id),
            }[t]
            with self.subTest(v["name"]):
                self.assertEqual(enc().hex(), v["hex"])

    def test_valid_split_at_every_boundary(self):
        for v in self.doc["valid"]:
            data = bytes.fromhex(v["hex"])
            for cut in range(len(data) + 1):
                with self.subTest(v["name"], cut=cut):
                    d = p.Decoder(self.limit, version=VECTORS_VERSION)
                    frames = d.feed(data[:cut]) + d.feed(data[cut:])
                    self.assertEqual([p.frame_to_dict(f) for f in frames], [v["frame"]])
                    self.assertEqual(d.buffered, 0)

    def test_valid_byte_by_byte(self):
        for v in self.doc["valid"]:
            data = bytes.fromhex(v["hex"])
            d = p.Decoder(self.limit, version=VECTORS_VERSION)
            frames = []
            for i in range(len(data)):
                got = d.feed(data[i:i + 1])
                if i < len(data) - 1:
                    self.assertEqual(got, [], v["name"])
                frames += got
            self.assertEqual([p.frame_to_dict(f) for f in frames], [v["frame"]], v["name"])

    def test_v2_types_are_unknown_to_a_v1_decoder(self):
        for t in sorted(p.V2_TYPES):
            with self.subTest(type=hex(t)):
                with self.assertRaises(p.ProtocolError) as e:
                    p.Decoder(self.limit, version=1).feed(p.encode_frame_raw(t, b"\0" * 12))
                self.assertEqual(e.exception.code, p.UNKNOWN_TYPE)

    def test_v3_types_are_unknown_to_v1_and_v2_decoders(self):
        for version in (1, 2):
            with self.subTest(version=version):
                with self.assertRaises(p.ProtocolError) as e:
                    p.Decoder(self.limit, version=version).feed(p.encode_pubx(1, b"c", b"x"))
                self.assertEqual(e.exception.code, p.UNKNOWN_TYPE)

    def test_all_valid_concatenated(self):
        data = b"".join(bytes.fromhex(v["hex"]) for v in self.doc["valid"])
        want = [v["frame"] for v in self.doc["valid"]]
        for step in (1, 3, 7, 64, len(data)):
            d = p.Decoder(self.limit, version=VECTORS_VERSION)
            frames = []
            for i in range(0, len(data), step):
                frames += d.feed(data[i:i + step])
            self.assertEqual([p.frame_to_dict(f) for f in frames], want, f"step {step}")

    def assert_error(self, v, fn):
        with self.assertRaises(p.ProtocolError) as cm:
            fn()
        self.assertEqual(cm.exception.code, v["code"], v["name"])
        self.assertEqual(cm.exception.name, v["error"], v["name"])

    def test_malformed(self):
        for v in self.doc["malformed"]:
            with self.subTest(v["name"]):
                d = p.Decoder(self.limit, version=VECTORS_VERSION)
                self.assert_error(v, lambda: d.feed(bytes.fromhex(v["hex"])))
                # the decoder stays failed
                self.assert_error(v, lambda: d.feed(b"\x00"))

    def test_malformed_split_at_every_boundary(self):
        for v in self.doc["malformed"]:
            data = bytes.fromhex(v["hex"])
            for cut in range(len(data) + 1):
                with self.subTest(v["name"], cut=cut):
                    d = p.Decoder(self.limit, version=VECTORS_VERSION)

                    def run():
                        d.feed(data[:cut])
                        d.feed(data[cut:])
                    self.assert_error(v, run)

    def test_malformed_after_valid_frame(self):
        ok = bytes.fromhex(self.doc["valid"][0]["hex"])
        for v in self.doc["malformed"]:
            with self.subTest(v["name"]):
                d = p.Decoder(self.limit, version=VECTORS_VERSION)
                self.assertEqual(len(d.feed(ok)), 1)
                self.assert_error(v, lambda: d.feed(bytes.fromhex(v["hex"])))

    def test_too_large_on_length_bytes_alone(self):
        for v in self.doc["malformed"]:
            if v["error"] != "FRAME_TOO_LARGE":
                continue
            d = p.Decoder(self.limit, version=VECTORS_VERSION)
            head = bytes.fromhex(v["hex"])[:4]
            self.assertEqual(d.feed(head[:3]), [])
            self.assert_error(v, lambda: d.feed(head[3:]))

    def test_limit_boundary(self):
        body = b"\x00" * 4 + b"\x00\x01c"
        at = p.encode_frame_raw(p.PUB, body + b"x" * (self.limit - 1 - len(body)))
        self.assertEqual(len(p.Decoder(self.limit, version=VECTORS_VERSION).feed(at)), 1)
        over = p.encode_frame_raw(p.PUB, body + b"x" * (self.limit - len(body)))
        with self.assertRaises(p.ProtocolError) as cm:
            p.Decoder(self.limit, version=VECTORS_VERSION).feed(over[:4])
        self.assertEqual(cm.exception.code, p.FRAME_TOO_LARGE)

    def test_encode_rejects_unrepresentable(self):
        with self.assertRaises(ValueError):
            p.encode_pub(1, b"x" * 65536, b"")
        with self.assertRaises(ValueError):
            p.encode_pub(1 << 32, b"x", b"")

    def test_worked_example(self):
        # PROTOCOL.md section 6, typed in by hand
        self.assertEqual(p.encode_hello(b"app", b"").hex(" "),
                         "00 00 00 0a 01 00 01 00 03 61 70 70 00 00")
        self.assertEqual(p.encode_sub(1, [b"news"]).hex(" "),
                         "00 00 00 0d 03 00 00 00 01 00 01 00 04 6e 65 77 73")
        self.assertEqual(p.encode_pub(2, b"news", b"hi").hex(" "),
                         "00 00 00 0d 02 00 00 00 02 00 04 6e 65 77 73 68 69")
        self.assertEqual(p.encode_ok(2).hex(" "), "00 00 00 05 83 00 00 00 02")
        self.assertEqual(p.encode_msg(b"news", b"hi").hex(" "),
                         "00 00 00 0b 82 00 04 6e 65 77 73 00 00 68 69")


if __name__ == "__main__":
    unittest.main()
