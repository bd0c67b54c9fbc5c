"""Distillation for the app: "Make a small fast version" of a finished run, the teacher-vs-student table,
and which model Predict and Listen live use (the student when there is one) with the measured speed.

The student is a queued job like a training run (`JobManager.submit` with task "distill"), so the Train tab's
poll, the log, stop and the run picker follow it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astapp.core.errors import AccessError
from astapp.core.runfolder import CONFIG, DISTILL, read_json
from astapp.jobs.manager import JobManager
from astapp.jobs.registry import run_dir
from astapp.jobs.sessions import Session

STUDENT_SIZES = ("tiny", "small")  # the accordion's choices; the CLI also takes HIDDENxLAYERS


class Distilling:
    """Start a student of a finished run; read its comparison; say which model a run's predictions use."""

    def __init__(self, manager: JobManager):
        self.manager = manager

    def start(self, session: Session, run_id: str | None, student: str = "tiny", pool: str | None = None,
              epochs: float | None = None) -> str:
        """Queue the distillation of the session's finished run `run_id`; returns the student's job id."""
        from astapp.distill.run import distill_config

        if not run_id:
            raise AccessError("Choose a finished run to make a small fast version of.")
        teacher = run_dir(Path(self.manager.root), session.owner, run_id)
        cfg = distill_config(teacher, student, teacher.parent / ".student-pending", _keep(session, pool), epochs)
        name = f"{self.manager.get_run(session.owner, run_id).name} · student {student}"
        return self.manager.submit(session.owner, cfg, name=name)

    def comparison(self, session: Session, run_id: str | None) -> dict[str, Any]:
        """distill.json of a student run ({} for any other run)."""
        if not run_id:
            return {}
        return read_json(run_dir(Path(self.manager.root), session.owner, run_id) / DISTILL)

    def table(self, session: Session, run_id: str | None) -> list[list[Any]]:
        """The teacher-vs-student rows [what, teacher, student] of a student run ([] for any other run)."""
        doc = self.comparison(session, run_id)
        if not doc:
            return []
        from astapp.distill.compare import table

        return table(doc)

    def student_of(self, session: Session, run_id: str) -> str | None:
        """The newest finished student of the run `run_id`, or None."""
        teacher = run_dir(Path(self.manager.root), session.owner, run_id).resolve()
        for info in self.manager.list_runs(session.owner):
            if info.state == "finished" and info.has_model and \
                    read_json(info.path / CONFIG).get("distilled_from") == str(teacher):
                return info.id
        return None

    def model_note(self, session: Session, run_id: str | None) -> str:
        """One line for Predict and Listen live: which model answers and why, with the speed measured here."""
        if not run_id:
            return ""
        doc = self.comparison(session, run_id)
        if doc:
            return (f"Using the small fast version ({doc.get('student_size')}): {_speed(doc)}. Choose its "
                    "teacher run in the picker for the original model.")
        student = self.student_of(session, run_id)
        if student is None:
            return "Using the trained model. Train tab → Make a small fast version for faster live listening."
        return (f"This run has a small fast version (run {student}): {_speed(self.comparison(session, student))}. "
                "Choose it in the picker for live listening.")


def _keep(session: Session, pool: str | None) -> str | None:
    """An uploaded pool copied into the session's workspace: the job may start after the upload's temporary
    file is gone (a folder on the server is used where it is)."""
    if not pool or not Path(pool).is_file():
        return pool or None
    import shutil

    from astapp.core.fsutil import atomic_dir

    dest = session.workspace / "pools" / Path(pool).stem
    if not dest.is_dir():
        with atomic_dir(dest) as tmp:  # a crash never leaves half a copy for a later job to read
            shutil.copyfile(pool, tmp / Path(pool).name)
    return str(dest / Path(pool).name)


def _speed(doc: dict[str, Any]) -> str:
    t, s = doc.get("teacher", {}), doc.get("student", {})
    if not (t.get("ms_per_clip") and s.get("ms_per_clip")):
        return "speed not measured"
    agree = doc.get("agreement")
    return (f"{s['ms_per_clip']:.0f} ms per clip vs {t['ms_per_clip']:.0f} ms for the teacher on this machine "
            f"({t['ms_per_clip'] / s['ms_per_clip']:.1f}× faster)"
            + (f", agrees with it on {100 * agree:.0f} % of validation clips" if agree is not None else ""))
