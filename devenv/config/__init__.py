"""The environment configuration: common keys, each backend's section, the YAML loader."""
