"""The container image recipe: Docker cannot run here, so the Dockerfile and .dockerignore are checked by reading
them against the repository (what is copied exists and reaches the build, the entrypoint is the console script,
both stages share one Python, the runtime has the node plugin's tools, the user matches the manifests).
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# PyYAML ships without type hints (and types-PyYAML is not a dependency); it comes with the kubernetes client.
yaml: Any = importlib.import_module("yaml")

REPO = Path(__file__).resolve().parents[3]
NODE_TOOLS = frozenset({"e2fsprogs", "xfsprogs", "util-linux", "mount", "kmod"})


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped (as Docker reads them)."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        if logical:
            keyword, _, arguments = logical.partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions of each stage, FROM first; global ARGs before the first FROM are left out."""
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    args: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            args[name] = default
    return args


def base_image(stage: list[Instruction], args: dict[str, str]) -> str:
    reference = stage[0].arguments.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], reference)


def copy_sources(instruction: Instruction) -> list[str]:
    """The context paths a COPY reads (none when it copies from another stage)."""
    words = shlex.split(instruction.arguments)
    if any(w.startswith("--from=") for w in words):
        return []
    paths = [w for w in words if not w.startswith("--")]
    if paths[0].startswith("["):
        paths = json.loads(" ".join(paths))
    return paths[:-1]


def dockerfile() -> list[Instruction]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


# ---- .dockerignore, with Docker's matching: '*' stays within one path segment, '**' spans any -------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, pattern) in file order; the last pattern that matches decides."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        rules.append((negated, _pattern_regex(pattern.lstrip("!").strip("/"))))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negated, rule in rules:
        # A pattern that matches a directory leaves out everything below it.
        if any(rule.fullmatch(prefix) for prefix in prefixes):
            verdict = not negated
    return verdict


def build_context() -> set[str]:
    """Every file the Dockerfile's COPY instructions can read, after .dockerignore."""
    rules = dockerignore()
    files: set[str] = set()
    for instruction in dockerfile():
        if instruction.keyword != "COPY":
            continue
        for source in copy_sources(instruction):
            root = REPO / source
            candidates = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
            files |= {str(p.relative_to(REPO)) for p in candidates}
    return {f for f in files if not ignored(f, rules)}


# ---- tests ----------------------------------------------------------------------------------------------------------


def test_every_copy_source_exists_and_is_not_dockerignored() -> None:
    rules = dockerignore()
    sources = [s for i in dockerfile() if i.keyword == "COPY" for s in copy_sources(i)]
    assert sources, "the Dockerfile copies nothing from the repository"
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path in the repository"
        assert not ignored(source.rstrip("/"), rules), f"COPY {source} is excluded by .dockerignore"


def test_build_context_holds_the_package_sources_and_no_compiled_objects() -> None:
    context = build_context()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert {"pyproject.toml", "setup.py", project["readme"]} <= context
    package = {str(p.relative_to(REPO)) for p in (REPO / "src" / "rds_csi").rglob("*") if p.suffix in (".py", ".pyx")}
    assert package
    assert package <= context, f"left out of the image build: {sorted(package - context)}"
    compiled = [f for f in context if f.endswith((".so", ".c", ".pyc"))]
    assert not compiled, f"a developer's build artefacts would reach the image: {compiled}"


def test_dockerignore_matching_follows_docker_rules() -> None:
    rules = dockerignore()
    assert ignored("src/rds_csi/_native/attachment_table.cpython-311-x86_64-linux-gnu.so", rules)
    assert ignored("src/rds_csi/csi/__pycache__/server.cpython-312.pyc", rules)
    assert ignored("tests/unit/deploy/test_deploy_image.py", rules)
    assert not ignored("src/rds_csi/_native/attachment_table.pyx", rules)
    assert not ignored("src/rds_csi/cli.py", rules)


def test_entrypoint_is_the_console_script() -> None:
    (entrypoint,) = [json.loads(i.arguments) for i in stages(dockerfile())[-1] if i.keyword == "ENTRYPOINT"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["rds-csi"]
    assert scripts["rds-csi"] == "rds_csi.cli:main"


def test_wheel_is_built_and_installed_on_the_same_python() -> None:
    # The runtime installs the build stage's wheels with --no-index: a different Python there would find none.
    instructions = dockerfile()
    build, runtime = stages(instructions)
    args = global_args(instructions)
    assert base_image(build, args) == base_image(runtime, args)
    build_name = build[0].arguments.split()[-1]
    assert any(f"from={build_name}" in i.arguments for i in runtime if i.keyword == "RUN")


def test_runtime_stage_installs_the_node_plugin_tools() -> None:
    runtime = stages(dockerfile())[-1]
    installs = [i.arguments for i in runtime if i.keyword == "RUN" and "apt-get install" in i.arguments]
    words = {w for command in installs for w in shlex.split(command)}
    assert words >= NODE_TOOLS, f"missing: {sorted(NODE_TOOLS - words)}"


def test_image_user_is_the_unprivileged_user_the_controller_runs_as() -> None:
    runtime = stages(dockerfile())[-1]
    (user,) = [i.arguments for i in runtime if i.keyword == "USER"]
    created = [re.search(r"--uid (\d+)", i.arguments) for i in runtime if "useradd" in i.arguments]
    controller = yaml.safe_load((REPO / "deploy" / "kubernetes" / "controller.yaml").read_text())
    plugin = controller["spec"]["template"]["spec"]["containers"][0]
    assert plugin["args"][0] == "plugin"
    assert [m.group(1) for m in created if m] == [user]
    assert plugin["securityContext"]["runAsUser"] == int(user)
