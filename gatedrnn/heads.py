"""Placeholder, replaced by the heads implementation."""
from torch import nn
class LastStep(nn.Module): pass
class MeanPool(nn.Module): pass
class MaxPool(nn.Module): pass
