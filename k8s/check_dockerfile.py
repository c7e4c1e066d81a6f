#!/usr/bin/env python3
"""Structure check for podrelay's Dockerfile (no Docker engine needed).

    python3 k8s/check_dockerfile.py [Dockerfile] [--install-deps scripts/install-deps.sh]

Asserts: multi-stage; every stage FROM debian:bookworm-slim; the stage the final one copies
from runs scripts/install-deps.sh then scripts/build.sh over a COPY of the whole repository;
the final stage installs only runtime packages (install-deps.sh --runtime, whose package list
is read and checked too, or an apt-get of runtime libraries), copies only the two binaries,
runs as numeric USER 65532, has ENTRYPOINT podrelay, EXPOSEs 7400 and 9400, and does not move
the app port off loopback. Prints one line per problem; exit status 1 if any.
"""
from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

BASE_IMAGE = "debian:bookworm-slim"
# Build tooling that must never reach the runtime image.
FORBIDDEN_PKG = re.compile(
    r"^(build-essential|cmake|ninja-build|make|pkg-config|git|gcc(-\d+)?|g\+\+(-\d+)?|"
    r"clang(-\d+)?|clang-format|cpp(-\d+)?|libclang.*|.*-dev(:\w+)?)$"
)
BINARIES = ("podrelay", "podrelay-cli")


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    index: int
    image: str
    name: str | None
    line: int
    body: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.body if i.keyword == keyword]


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuations joined and comment lines dropped."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = n
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        joined = " ".join(p.strip() for p in pending if p.strip())
        pending = []
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    if pending:
        out.append(Instruction(start, "<UNTERMINATED>", " ".join(pending)))
    return out


def stages_of(instructions: list[Instruction]) -> tuple[list[Stage], list[str]]:
    stages: list[Stage] = []
    problems: list[str] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            image = words[0] if words else ""
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), image, name, ins.line))
        elif ins.keyword == "<UNTERMINATED>":
            problems.append(f"line {ins.line}: line continuation runs off the end of the file")
        elif not stages:
            if ins.keyword != "ARG":
                problems.append(f"line {ins.line}: {ins.keyword} before the first FROM")
        else:
            stages[-1].body.append(ins)
    return stages, problems


def copy_parts(ins: Instruction) -> tuple[dict[str, str], list[str]]:
    """Flags and [sources..., dest] of a COPY/ADD (shell or JSON form)."""
    words = shlex.split(ins.args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    if len(words) == 1 and words[0].startswith("["):
        words = json.loads(words[0])
    elif words and words[0].startswith("["):
        words = json.loads(" ".join(words))
    return flags, words


def runtime_packages(install_deps: Path) -> list[str]:
    """The runtime_pkgs=( ... ) array of scripts/install-deps.sh."""
    m = re.search(r"runtime_pkgs=\(([^)]*)\)", install_deps.read_text())
    if not m:
        return []
    body = "\n".join(line.split("#", 1)[0] for line in m.group(1).splitlines())
    return body.split()


def commands(run: str) -> list[list[str]]:
    """The simple commands of a RUN line, each as words, VAR=value prefixes dropped."""
    out = []
    for segment in re.split(r"&&|\|\||;|\|", run):
        try:
            words = shlex.split(segment)
        except ValueError:
            words = segment.split()
        while words and "=" in words[0] and not words[0].startswith("-"):
            words.pop(0)
        if words and Path(words[0]).name in ("bash", "sh"):
            words.pop(0)
        if words:
            out.append(words)
    return out


def script_calls(run: str, script: str) -> list[list[str]]:
    """Arguments of every invocation of `script` (by file name) in a RUN line."""
    return [w[1:] for w in commands(run) if Path(w[0]).name == script]


def apt_installed(run: str) -> list[str]:
    """Package names an apt-get/apt install inside a RUN command line would install."""
    pkgs: list[str] = []
    for words in commands(run):
        if len(words) >= 2 and Path(words[0]).name in ("apt-get", "apt") and "install" in words:
            after = words[words.index("install") + 1:]
            pkgs += [w for w in after if not w.startswith("-")]
    return pkgs


def check(text: str, install_deps: Path | None = None) -> list[str]:
    problems: list[str] = []
    stages, more = stages_of(parse(text))
    problems += more
    if len(stages) < 2:
        return problems + [f"want a multi-stage build, found {len(stages)} stage(s)"]

    for s in stages:
        if s.image != BASE_IMAGE and not s.image.startswith(BASE_IMAGE + "@sha256:"):
            problems.append(f"line {s.line}: stage {s.name or s.index} is FROM {s.image}, want {BASE_IMAGE}")

    final = stages[-1]
    by_ref = {str(s.index): s for s in stages} | {s.name: s for s in stages if s.name}

    # --- build stage: whatever the final stage copies its binaries from ---------------------
    sources = {copy_parts(c)[0].get("from") for c in final.all("COPY")} - {None}
    build_stages = [by_ref[r] for r in sources if r in by_ref and by_ref[r] is not final]
    if not build_stages:
        problems.append("final stage copies nothing from a build stage (COPY --from=<build stage>)")
    for b in build_stages:
        where = f"build stage {b.name or b.index}"
        if not any(copy_parts(c)[1][:1] == ["."] for c in b.all("COPY")):
            problems.append(f"{where}: does not COPY the repository (COPY . .)")
        calls = [w[0] for r in b.all("RUN") for w in commands(r.args) if "--runtime" not in w[1:]]
        deps = [i for i, c in enumerate(calls) if c in ("scripts/install-deps.sh", "./scripts/install-deps.sh")]
        build = [i for i, c in enumerate(calls) if c in ("scripts/build.sh", "./scripts/build.sh")]
        if not deps:
            problems.append(f"{where}: does not run scripts/install-deps.sh (the full build dependencies)")
        if not build:
            problems.append(f"{where}: does not run scripts/build.sh")
        if deps and build and deps[0] > build[0]:
            problems.append(f"{where}: runs scripts/build.sh before scripts/install-deps.sh")

    # --- final stage ------------------------------------------------------------------------
    users = final.all("USER")
    if not users:
        problems.append("final stage has no USER (it would run as root)")
    elif not re.fullmatch(r"65532(:65532)?", users[-1].args.strip()):
        problems.append(f"line {users[-1].line}: final USER is {users[-1].args!r}, want numeric 65532 (or 65532:65532)")

    installed: list[str] = []
    for run in final.all("RUN"):
        installed += apt_installed(run.args)
        for rest in script_calls(run.args, "install-deps.sh"):
            if "--runtime" not in rest:
                problems.append(f"line {run.line}: final stage runs install-deps.sh without --runtime (installs compilers)")
            elif install_deps is not None and install_deps.exists():
                installed += runtime_packages(install_deps)
        if re.search(r"\b(cmake|make|ninja|g\+\+|gcc|clang)\b", run.args) and "apt-get" not in run.args:
            problems.append(f"line {run.line}: final stage runs a build tool: {run.args[:60]}")
    for pkg in installed:
        if FORBIDDEN_PKG.match(pkg):
            problems.append(f"final stage installs build-only package {pkg}")

    copied: list[str] = []
    for ins in final.all("COPY") + final.all("ADD"):
        flags, words = copy_parts(ins)
        srcs = words[:-1]
        if ins.keyword == "ADD" or "from" not in flags:
            if any(s in (".", "./", "*") for s in srcs):
                problems.append(f"line {ins.line}: final stage copies the whole build context")
            continue
        for s in srcs:
            if Path(s).name not in BINARIES:
                problems.append(f"line {ins.line}: final stage copies {s} from the build stage; only the binaries belong there")
            copied.append(Path(s).name)
    for b in BINARIES:
        if b not in copied:
            problems.append(f"final stage does not copy {b} from the build stage")

    entry = final.all("ENTRYPOINT")
    if not entry:
        problems.append("final stage has no ENTRYPOINT")
    else:
        try:
            value = json.loads(entry[-1].args)
        except json.JSONDecodeError:
            value = None
        if not (isinstance(value, list) and value and Path(value[0]).name == "podrelay"):
            problems.append(f"line {entry[-1].line}: ENTRYPOINT must be the exec form [\"/usr/local/bin/podrelay\"], got {entry[-1].args}")

    exposed = {p.split("/")[0] for e in final.all("EXPOSE") for p in e.args.split()}
    for port in ("7400", "9400"):
        if port not in exposed:
            problems.append(f"final stage does not EXPOSE {port}")

    for ins in final.all("CMD") + final.all("ENTRYPOINT") + final.all("ENV"):
        if re.search(r"0\.0\.0\.0:7400|\[::\]:7400", ins.args):
            problems.append(f"line {ins.line}: the app port 7400 must stay on loopback (the sidecar shares the pod network)")
    return problems


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    dockerfile = root / "Dockerfile"
    install_deps = root / "scripts" / "install-deps.sh"
    args = list(argv)
    if "--install-deps" in args:
        i = args.index("--install-deps")
        install_deps = Path(args[i + 1])
        del args[i:i + 2]
    if args:
        dockerfile = Path(args[0])
    problems = check(dockerfile.read_text(), install_deps)
    for p in problems:
        print(f"FAIL {dockerfile}: {p}")
    print(f"dockerfile-check {dockerfile}: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
