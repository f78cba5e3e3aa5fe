"""#28: a GGUF model with no head that fits gets one without a step the user must remember: fitted in
the background on the rows that ship with tonebot while label scoring answers, then served — no
restart, no failed request — saved where the next start finds it, its features cached by text."""

import asyncio
import dataclasses
from pathlib import Path

from bot.app import headless_fit
from bot.config import Settings
from core import metrics
from core.local import autofit, fitting
from core.local.fitting import SHIPPED_ROWS
from core.local.llamacpp import LlamaCppEngine

TEXTS = ["This is terrible, nobody answers me!", "Can I change the delivery address?", "Thanks, works great!"]


def headless(base_settings: Settings, tmp_path: Path) -> Settings:
    """The embedded model with a prompt no shipped head was fitted on, and a cache of its own (the
    requantized weights shared with the real cache, so the test does not write them again)."""
    real = base_settings.model.cache_dir
    (real / "requantized").mkdir(parents=True, exist_ok=True)
    for entry in real.iterdir():
        if entry.name not in ("heads", "features"):
            (tmp_path / entry.name).symlink_to(entry)
    rows = (SHIPPED_ROWS / "customer_service.jsonl").read_text(encoding="utf-8").splitlines()
    (small := tmp_path / "rows.jsonl").write_text("\n".join(rows[::2]), encoding="utf-8")  # a small fixed set
    sentiment = dataclasses.replace(
        base_settings.sentiment, examples=base_settings.sentiment.examples[:3], fit_files=(str(small),)
    )
    return dataclasses.replace(base_settings, sentiment=sentiment,
                               model=dataclasses.replace(base_settings.model, cache_dir=tmp_path))  # fmt: skip


async def test_a_model_with_no_head_gets_one_fitted_in_the_background_and_served_without_a_restart(
    base_settings: Settings, tmp_path: Path
) -> None:
    settings = headless(base_settings, tmp_path)
    engine = await LlamaCppEngine.load(settings.model, settings.sentiment)
    try:
        assert engine.head is None  # no shipped head fits this prompt: label scoring for now
        for off in ({"head": ""}, {"fit_automatically": False}):  # the user said no: label scoring stays
            assert headless_fit(engine, dataclasses.replace(settings.sentiment, **off)) is None  # type: ignore[arg-type]
        fit = headless_fit(engine, settings.sentiment)
        assert fit is not None
        task = asyncio.create_task(fit)
        answered = 0
        while not task.done():  # customers keep writing while it fits: every mood is read
            moods = await engine.classify(TEXTS)
            assert [m.label for m in moods] and all(0.99 < sum(m.scores.values()) < 1.01 for m in moods)
            answered += 1
            await asyncio.sleep(0.2)
        await task
        assert answered > 1 and engine.head is not None and metrics.HEAD_FIT_PROGRESS._value.get() == 1.0
        labels = [m.label for m in await engine.classify(TEXTS)]  # read by the fitted head now
        assert labels[0] == "negative" and labels[2] == "positive"
        [saved] = (tmp_path / "heads").glob("*.safetensors")
        assert saved.name.endswith(f"{engine.identity.prompt}.safetensors")
    finally:
        await engine.aclose()
    again = await LlamaCppEngine.load(settings.model, settings.sentiment)  # the next start finds it
    try:
        assert again.head is not None and headless_fit(again, settings.sentiment) is None
        # the features are cached by text: a second fit reads no row again
        read: list[int] = []
        rows = autofit.fit_rows(settings.sentiment.fit_files)
        await autofit.fit(again, fitting.parts_of(rows), parallel=2, progress=lambda done, total: read.append(done))
        assert read == []
    finally:
        await again.aclose()
