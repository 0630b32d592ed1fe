"""Search spaces, the config codec, the exact cost model and once-for-all supernets."""

from supernets.spaces import MobileNetV3Space, SearchSpace, get_search_space, register_search_space

__all__ = ["MobileNetV3Space", "SearchSpace", "get_search_space", "register_search_space"]
