"""RunLogger: what reaches the console and the run folder, on rank 0 and on other DDP ranks."""

from __future__ import annotations

from cvpipe.engine.logger import RunLogger


def test_ranks_other_than_0_print_nothing(capsys):
    # a DDP rank != 0 has no run folder and must stay quiet, or every line shows once per process
    quiet = RunLogger(None, enabled=False, tensorboard=False)
    quiet.info("epoch 1/2 from rank 1")
    quiet.warning("from rank 1")
    quiet.close()
    assert capsys.readouterr().out == ""


def test_without_a_run_folder_messages_still_reach_the_console(capsys, tmp_path):
    library = RunLogger(None, tensorboard=False)
    library.info("no folder")
    main = RunLogger(tmp_path / "run", tensorboard=False)
    main.info("with folder")
    main.close()
    out = capsys.readouterr().out
    assert "no folder" in out and "with folder" in out
    assert "with folder" in (tmp_path / "run" / "train.log").read_text()
