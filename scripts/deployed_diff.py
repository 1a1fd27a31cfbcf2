"""What a change of template.yaml changes in what CloudFormation deploys.

Run with the SAM CLI's venv (it imports the SAM CLI and the SAM translator):

    .venv-sam/bin/python scripts/deployed_diff.py [BASE] [TEMPLATE]

BASE is a git revision (default main) whose template.yaml is compared with TEMPLATE (default the
working tree's template.yaml). Each is expanded by the SAM CLI's own AWS::LanguageExtensions
processing (Fn::ForEach) and transformed by the SAM translator into the resources CloudFormation
creates. A role's permissions are compared as what they grant, wherever the statements are
written (inline, or a managed policy of the template attached to it): moving a statement into a
shared managed policy is no change, granting or losing one is. Prints every difference and exits
1 if there is any.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from samcli.lib.cfn_language_extensions.models import TemplateProcessingContext
from samcli.lib.cfn_language_extensions.processors import ForEachProcessor, TemplateParsingProcessor
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from devstack.template import resolve_literals  # noqa: E402 - after the repository is on the path

Resources = dict[str, dict[str, Any]]


class _NoLookup:
    """The managed policy loader: every policy this template names is an ARN or a !Ref."""

    def load(self) -> dict[str, str]:
        return {}


def expanded(text: str) -> dict[str, Any]:
    """A SAM template with its language extensions expanded, as CloudFormation hands it to SAM."""
    template: dict[str, Any] = yaml_parse(text)
    transforms = template.get("Transform")
    if isinstance(transforms, list) and "AWS::LanguageExtensions" in transforms:
        # The SAM CLI's own Fn::ForEach expansion, without its local resolution of parameters
        # (CloudFormation gets the template as written); then what FindInMap, Select and Sub give
        # for literal arguments, so `!Sub [x-${S}, {S: !FindInMap [...]}]` equals `!Sub x-api`.
        context = TemplateProcessingContext(fragment=copy.deepcopy(template))
        TemplateParsingProcessor().process_template(context)
        ForEachProcessor().process_template(context)
        template = context.fragment
        mappings = template.get("Mappings", {})
        template = {
            k: v if k in ("Mappings", "Parameters") else resolve_literals(v, mappings) for k, v in template.items()
        }
    return template


def deployed(text: str) -> Resources:
    """The CloudFormation resources of a SAM template."""
    template = expanded(text)
    template.pop("Mappings", None)
    if isinstance(template.get("Transform"), list):
        template["Transform"] = [t for t in template["Transform"] if t != "AWS::LanguageExtensions"]
    for resource in template["Resources"].values():  # what `sam package` does: code in S3
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://artifacts/{props[key]}"
    resources: Resources = transform(template, {}, _NoLookup())["Resources"]  # type: ignore[arg-type]
    return resources


# Actions on one item: their request has exactly one dynamodb:LeadingKeys value.
SINGLE_ITEM_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
LEADING_KEYS = "ForAllValues:StringLike"


def _conditions(action: str, condition: Any) -> list[Any]:
    """The condition as equivalent alternatives: on a single-item action, "every leading key
    matches one of P" is "the key matches p" for some p of P, one grant per pattern."""
    if action in SINGLE_ITEM_ACTIONS and isinstance(condition, dict) and list(condition) == [LEADING_KEYS]:
        ((key, patterns),) = condition[LEADING_KEYS].items()
        if key == "dynamodb:LeadingKeys" and isinstance(patterns, list):
            return [{LEADING_KEYS: {key: [p]}} for p in patterns]
    return [condition]


def _grants(document: dict[str, Any]) -> set[str]:
    """One entry per (effect, action, resource, condition) a policy document allows or denies."""
    out = set()
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in actions:
            for target in targets:
                for condition in _conditions(action, statement.get("Condition")):
                    out.add(json.dumps([statement["Effect"], action, target, condition], sort_keys=True))
    return out


def normalized(resources: Resources) -> Resources:
    """Roles with their grants gathered from inline and attached template policies; those managed
    policies then folded away."""
    out = copy.deepcopy(resources)
    managed = {k: r for k, r in out.items() if r["Type"] == "AWS::IAM::ManagedPolicy"}
    attached: set[str] = set()
    for resource in out.values():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        props = resource["Properties"]
        grants: set[str] = set()
        for policy in props.pop("Policies", []):
            grants |= _grants(policy["PolicyDocument"])
        arns = []
        for arn in props.get("ManagedPolicyArns", []):
            ref = arn.get("Ref") if isinstance(arn, dict) else None
            if ref in managed:
                attached.add(ref)
                grants |= _grants(managed[ref]["Properties"]["PolicyDocument"])
            else:
                arns.append(arn)
        props["ManagedPolicyArns"] = sorted(arns, key=lambda a: json.dumps(a, sort_keys=True))
        props["Grants"] = sorted(grants)
    for name in attached:
        if set(managed[name]["Properties"]) <= {"PolicyDocument", "Description"}:
            del out[name]
    return out


def differences(base: Resources, head: Resources) -> list[str]:
    lines = []
    for name in sorted(set(base) | set(head)):
        before, after = base.get(name), head.get(name)
        if before == after:
            continue
        if before is None or after is None:
            lines.append(f"{name}: {'added' if before is None else 'removed'}")
            continue
        a = json.dumps(before, indent=1, sort_keys=True).splitlines()
        b = json.dumps(after, indent=1, sort_keys=True).splitlines()
        lines.append(f"{name}: changed")
        lines += [f"  - {x}" for x in a if x not in b] + [f"  + {x}" for x in b if x not in a]
    return lines


def main(argv: list[str]) -> int:
    base_rev = argv[1] if len(argv) > 1 else "main"
    head_path = Path(argv[2]) if len(argv) > 2 else REPO_ROOT / "template.yaml"
    show = ["git", "show", f"{base_rev}:template.yaml"]
    base_text = subprocess.check_output(show, cwd=REPO_ROOT, text=True)  # noqa: S603 - git on PATH, a revision
    base, head = deployed(base_text), deployed(head_path.read_text(encoding="utf-8"))
    found = differences(normalized(base), normalized(head))
    print(f"{len(base)} resources from {base_rev}, {len(head)} from {head_path}")
    print("\n".join(found) if found else "no difference in what CloudFormation deploys")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
