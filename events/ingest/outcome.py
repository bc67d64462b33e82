"""What a request's answer says: counts, per-event errors and warnings."""
from dataclasses import dataclass, field


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def as_json(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected,
                "errors": self.errors, "warnings": self.warnings}


def error_entry(index: int, raw, code: str, fields: dict, message: str) -> dict:
    client_id = raw.get("id") if isinstance(raw, dict) else None
    return {"index": index, "id": client_id if isinstance(client_id, str) else None, "code": code,
            "message": message, "fields": fields}


def judge_repeat(index: int, client_id: str, same_content: bool, outcome: Outcome) -> None:
    if same_content:
        outcome.duplicates += 1
        return
    outcome.rejected += 1
    message = "id: an event with this id and different content is already stored; it was left unchanged"
    outcome.errors.append(error_entry(index, {"id": client_id}, "id_conflict",
                                       {"id": ["already used for an event with different content"]}, message))


def settle_repeats(settled: dict, repeats: list, outcome: Outcome) -> None:
    """Judges in-batch repeats against what their id holds once the batch is stored.

    That is the first occurrence when it was stored, but the earlier event when the
    first occurrence was itself a repeat: a later copy of a conflicting event is a
    conflict too, not a duplicate of something that was never stored.
    """
    for repeat in repeats:
        judge_repeat(repeat.index, repeat.client_id,
                      settled.get((repeat.project_id, repeat.client_id)) == repeat.digest, outcome)


