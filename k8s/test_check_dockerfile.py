"""Proves each rule of check_dockerfile.py can fail, by breaking a copy of the real Dockerfile.

    python3 -m unittest discover -s k8s -p 'test_*.py'
"""
import re
import tempfile
import unittest
from pathlib import Path

import check_dockerfile as cd

ROOT = Path(__file__).resolve().parent.parent
REAL = (ROOT / "Dockerfile").read_text()
DEPS = ROOT / "scripts" / "install-deps.sh"


def mutated(old: str, new: str, count: int = 1) -> str:
    assert old in REAL, f"{old!r} is not in the Dockerfile any more; update this test"
    return REAL.replace(old, new, count)


class RealDockerfile(unittest.TestCase):
    def test_passes(self):
        self.assertEqual(cd.check(REAL, DEPS), [])


class EachRuleCanFail(unittest.TestCase):
    def assertProblem(self, text, pattern, deps=DEPS):
        problems = cd.check(text, deps)
        self.assertTrue(
            any(re.search(pattern, p) for p in problems),
            f"no problem matching {pattern!r}; got {problems}",
        )

    def test_single_stage(self):
        text = "FROM debian:bookworm-slim\nUSER 65532\nENTRYPOINT [\"/usr/local/bin/podrelay\"]\n"
        self.assertProblem(text, r"multi-stage")

    def test_other_base_image(self):
        self.assertProblem(mutated("FROM debian:bookworm-slim AS runtime", "FROM ubuntu:24.04 AS runtime"), r"want debian:bookworm-slim")

    def test_build_stage_base(self):
        self.assertProblem(mutated("FROM debian:bookworm-slim AS build", "FROM gcc:13 AS build"), r"stage build is FROM gcc:13")

    def test_build_skips_install_deps(self):
        self.assertProblem(mutated("RUN scripts/install-deps.sh && scripts/build.sh", "RUN scripts/build.sh"), r"does not run scripts/install-deps.sh")

    def test_build_skips_build_script(self):
        self.assertProblem(
            mutated("RUN scripts/install-deps.sh && scripts/build.sh", "RUN scripts/install-deps.sh && cmake --build build"),
            r"does not run scripts/build.sh",
        )

    def test_build_uses_runtime_deps_only(self):
        self.assertProblem(
            mutated("RUN scripts/install-deps.sh && scripts/build.sh", "RUN scripts/install-deps.sh --runtime && scripts/build.sh"),
            r"does not run scripts/install-deps.sh",
        )

    def test_build_order(self):
        self.assertProblem(mutated("RUN scripts/install-deps.sh && scripts/build.sh", "RUN scripts/build.sh && scripts/install-deps.sh"), r"before")

    def test_build_without_repo(self):
        self.assertProblem(mutated("COPY . .", "COPY scripts/ scripts/"), r"does not COPY the repository")

    def test_user_missing(self):
        self.assertProblem(mutated("USER 65532:65532", ""), r"no USER")

    def test_user_by_name(self):
        self.assertProblem(mutated("USER 65532:65532", "USER nonroot"), r"want numeric 65532")

    def test_user_root_last(self):
        self.assertProblem(mutated("USER 65532:65532", "USER 65532:65532\nUSER 0"), r"final USER is '0'")

    def test_runtime_full_deps(self):
        self.assertProblem(mutated("/tmp/install-deps.sh --runtime", "/tmp/install-deps.sh"), r"without --runtime")

    def test_runtime_apt_dev_package(self):
        self.assertProblem(
            mutated("RUN /tmp/install-deps.sh --runtime", "RUN apt-get update && apt-get install -y --no-install-recommends libhiredis-dev libssl3 && /tmp/install-deps.sh --runtime"),
            r"build-only package libhiredis-dev",
        )

    def test_runtime_apt_compiler(self):
        for pkg in ("build-essential", "cmake", "g++", "clang"):
            with self.subTest(pkg=pkg):
                text = mutated("RUN /tmp/install-deps.sh --runtime", f"RUN apt-get install -y {pkg} && /tmp/install-deps.sh --runtime")
                self.assertProblem(text, rf"build-only package {re.escape(pkg)}")

    def test_runtime_list_in_script_is_read(self):
        with tempfile.TemporaryDirectory() as d:
            fake = Path(d) / "install-deps.sh"
            fake.write_text("runtime_pkgs=(\n  libhiredis0.14 g++ libssl-dev\n)\n")
            self.assertProblem(REAL, r"build-only package g\+\+", deps=fake)
            self.assertProblem(REAL, r"build-only package libssl-dev", deps=fake)

    def test_runtime_copies_whole_context(self):
        self.assertProblem(mutated("COPY scripts/install-deps.sh /tmp/install-deps.sh", "COPY . /src"), r"copies the whole build context")

    def test_runtime_copies_more_than_binaries(self):
        self.assertProblem(
            mutated("/out/podrelay-cli /usr/local/bin/", "/out/podrelay-cli /src/build/lib /usr/local/bin/"),
            r"only the binaries belong there",
        )

    def test_runtime_misses_cli(self):
        self.assertProblem(mutated(" /out/podrelay-cli /usr/local/bin/", " /usr/local/bin/"), r"does not copy podrelay-cli")

    def test_entrypoint_missing(self):
        self.assertProblem(mutated('ENTRYPOINT ["/usr/local/bin/podrelay"]', ""), r"no ENTRYPOINT")

    def test_entrypoint_shell_form(self):
        self.assertProblem(mutated('ENTRYPOINT ["/usr/local/bin/podrelay"]', "ENTRYPOINT /usr/local/bin/podrelay"), r"exec form")

    def test_entrypoint_other_binary(self):
        self.assertProblem(mutated('ENTRYPOINT ["/usr/local/bin/podrelay"]', 'ENTRYPOINT ["/bin/sh"]'), r"exec form")

    def test_expose(self):
        self.assertProblem(mutated("EXPOSE 7400 9400", "EXPOSE 7400"), r"does not EXPOSE 9400")
        self.assertProblem(mutated("EXPOSE 7400 9400", "EXPOSE 9400"), r"does not EXPOSE 7400")

    def test_listen_all_interfaces(self):
        self.assertProblem(mutated("CMD []", 'CMD ["--listen", "0.0.0.0:7400"]'), r"must stay on loopback")

    def test_unterminated_continuation(self):
        self.assertProblem(REAL.rstrip() + " \\\n", r"runs off the end")


class Parser(unittest.TestCase):
    def test_continuations_and_comments(self):
        ins = cd.parse("FROM a AS b\nRUN one \\\n# comment inside\n    two\n")
        self.assertEqual([(i.keyword, i.args) for i in ins], [("FROM", "a AS b"), ("RUN", "one two")])

    def test_apt_installed(self):
        self.assertEqual(cd.apt_installed("apt-get update && DEBIAN_FRONTEND=x apt-get install -y --no-install-recommends a b-dev"), ["a", "b-dev"])


if __name__ == "__main__":
    unittest.main()
