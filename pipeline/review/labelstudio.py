"""Label Studio round trip, for teams that review there.

Export: one task per queue group (cells that read the same), `data.image` its first cell's crop, the pipeline's value as a
pre-annotation (a `predictions` entry with a TextArea result), plus the labeling config
the tasks expect. Import: Label Studio's JSON export of those tasks; the latest
non-cancelled annotation of each task becomes a decision on the whole group (reviewer
`labelstudio:<annotator>`), exactly as if made in our app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .session import ReviewError, ReviewSession, display
from .store import REVIEW_DIR

FROM_NAME = "value"
TO_NAME = "image"

LABEL_CONFIG = f"""<View>
  <Header value="$key · $label"/>
  <Text name="group" value="one answer for $group_cells cells in: $group_files"/>
  <Image name="{TO_NAME}" value="$image" zoom="true"/>
  <Image name="row" value="$row_image"/>
  <Text name="raw" value="$raw"/>
  <Text name="reasons" value="$reasons"/>
  <TextArea name="{FROM_NAME}" toName="{TO_NAME}" editable="true" maxSubmissions="1"
            placeholder="the value as printed in the cell" rows="1"/>
</View>
"""

# Label Studio serves local files under this URL when LOCAL_FILES_SERVING_ENABLED is set;
# with LOCAL_FILES_DOCUMENT_ROOT = the output folder the paths below resolve.
DEFAULT_IMAGE_PREFIX = "/data/local-files/?d="


def export_tasks(session: ReviewSession, image_prefix: str = DEFAULT_IMAGE_PREFIX) -> list[dict[str, Any]]:
    """The open groups of the queue (not decided yet) as Label Studio tasks: one task per group,
    its first item's crop shown; importing it decides every cell of the group."""
    decisions = session.decisions()
    tasks = []
    seen: set[str] = set()
    for it in session.items():
        if it.group in seen or session.is_decided(it, decisions):
            continue
        seen.add(it.group)
        members = session.members(it)
        text = display(it.value)
        img = f"{image_prefix}{REVIEW_DIR}/{it.crop}" if it.crop else ""
        row_img = f"{image_prefix}{REVIEW_DIR}/{it.row_crop}" if it.row_crop else img
        tasks.append({
            "data": {
                "image": img, "row_image": row_img, "item_id": it.id, "file": it.file,
                "form_index": it.form_index, "section": it.section, "row": it.row, "key": it.key,
                "label": it.label or "", "raw": it.raw, "value": text, "confidence": it.confidence,
                "reasons": "; ".join(it.reasons),
                "alternatives": "; ".join(f"{display(a.get('value'))} ({a.get('why', '')})" for a in it.alternatives),
                "group": it.group, "group_cells": sum(len(m.cells) for m in members),
                "group_files": ", ".join(sorted({m.file for m in members})),
            },
            "predictions": [{
                "model_version": "scanforms",
                "score": it.confidence,
                "result": [{
                    "id": "v0", "from_name": FROM_NAME, "to_name": TO_NAME, "type": "textarea",
                    "value": {"text": [text]},
                }],
            }],
        })
    return tasks


def write_export(session: ReviewSession, path: Path, image_prefix: str = DEFAULT_IMAGE_PREFIX) -> int:
    """Tasks to `path`, the labeling config beside it (`<path stem>.xml`); returns the task count."""
    from ..export import atomic_write_text

    tasks = export_tasks(session, image_prefix)
    atomic_write_text(path, json.dumps(tasks, ensure_ascii=False, indent=1))
    atomic_write_text(path.with_suffix(".xml"), LABEL_CONFIG)
    return len(tasks)


def _annotator(a: dict[str, Any]) -> str:
    who = a.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return f"labelstudio:{who if who is not None else 'unknown'}"


def _text_of(annotation: dict[str, Any]) -> str | None:
    for r in annotation.get("result") or []:
        if r.get("from_name") == FROM_NAME and r.get("type") == "textarea":
            texts = (r.get("value") or {}).get("text") or []
            return "".join(str(t) for t in texts).strip() if texts else ""
    return None


def read_results(tasks: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(item id, text, reviewer) from each task's latest non-cancelled annotation."""
    out = []
    for t in tasks:
        item_id = (t.get("data") or {}).get("item_id")
        anns = [a for a in t.get("annotations") or [] if not a.get("was_cancelled")]
        if not item_id or not anns:
            continue
        latest = max(anns, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))
        text = _text_of(latest)
        if text is not None:
            out.append((str(item_id), text, _annotator(latest)))
    return out


def import_results(session: ReviewSession, path: Path) -> tuple[int, list[str]]:
    """Apply Label Studio's JSON export; returns (decisions made, problems)."""
    tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(tasks, list):
        raise ReviewError(f"{path}: expected Label Studio's JSON export (a list of tasks)")
    done, problems = 0, []
    for item_id, text, who in read_results(tasks):
        try:
            session.decide(item_id, "import", text=text, reviewer=who)
            done += 1
        except ReviewError as e:
            problems.append(f"{item_id}: {e}")
    return done, problems

