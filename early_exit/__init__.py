"""Early-exit networks on once-for-all backbones (EDANAS/NACHOS): the ``eemobilenetv3`` search space, exit heads,
exit policies, average MACs and the early-exit export.

Importing the package registers the ``eemobilenetv3`` search space with :func:`supernets.get_search_space`
(supernets sits below early_exit and never imports it); ``search`` imports it, so every search sees the space.
"""

from early_exit.space import DEFAULT_T_VALUES, EEMobileNetV3Space

__all__ = ["DEFAULT_T_VALUES", "EEMobileNetV3Space"]
