r"""Next-value forecasting of the weekly Mauna Loa CO2 series (1958-2001, 2284 weeks,
ppm) bundled with statsmodels; the classic "LSTM with a Dense(1) on top" regression.

The 59 missing weeks are filled by linear interpolation. Each example is a window of
the last 52 weeks (one seasonal cycle); the target is the next week. Windows and
targets are expressed relative to the window's last value and divided by the standard
deviation of the weekly change in the training part, so the model learns the change,
which keeps its inputs in range when the trend leaves the training years behind. The
test MSE is reported in ppm^2, next to the naive forecast "repeat the last value"
(``repeat_last_mse``).

Splits are chronological: the first 70% of the targets train, the next 15% validate,
the last 15% test.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import DataUnavailable, RegressionTask, Split, Splits

WINDOW = 52
FRACTIONS = (0.70, 0.15)


def weekly_co2() -> np.ndarray:
    """The series in ppm, missing weeks interpolated: (2284,) float64."""
    try:
        from statsmodels.datasets import co2
    except ImportError as error:
        raise DataUnavailable("task co2 needs statsmodels, which bundles the series: install it "
                              "with the co2 extra: pip install 'gatedrnn[co2]' (or: pip install "
                              "statsmodels)") from error
    return co2.load_pandas().data["co2"].interpolate().to_numpy()


class CO2(RegressionTask):
    name = "co2"
    description = "Mauna Loa CO2 weekly, next value from the last 52 weeks (MSE in ppm^2)"
    input_size, seq_len = 1, WINDOW
    defaults = {"hidden": 64, "epochs": 40, "batch_size": 32, "lr": 3e-3, "head": "last"}

    def load(self) -> Splits:
        series = weekly_co2()
        starts = np.arange(len(series) - WINDOW)
        windows = np.stack([series[s: s + WINDOW] for s in starts])  # (N, 52)
        last = windows[:, -1:]  # (N, 1)
        targets = series[starts + WINDOW, None] - last  # (N, 1): the change to forecast
        n_train = int(len(starts) * FRACTIONS[0])
        n_val = int(len(starts) * FRACTIONS[1])
        self.target_scale = float(np.diff(series[: n_train + WINDOW]).std())
        x = torch.from_numpy(((windows - last) / self.target_scale).astype(np.float32)).unsqueeze(-1)
        y = torch.from_numpy((targets / self.target_scale).astype(np.float32))  # (N, 1)
        test = slice(n_train + n_val, None)
        baseline = float(np.mean(targets[test] ** 2))  # repeating the last value predicts no change
        return Splits(Split(x[:n_train], y[:n_train]),
                      Split(x[n_train: n_train + n_val], y[n_train: n_train + n_val]),
                      Split(x[test], y[test]), {"repeat_last_mse": baseline})
