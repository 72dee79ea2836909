"""Scene-head training on FindingEmo: annotation reader, downloader, embedding cache, split,
training with early stopping and calibration, reports and the encoder ablation.

Entry points: `run.train_scene`, `run.ablation`, `run.evaluate_scene_head` (used by
`moodsic train scene` and `moodsic eval findingemo`).
"""
