"""Agents: tool-call formats, tool executors (Python, HTTP), environments and (in episode.py) episodes.

Layer: above models/, graders/ and tasks/, below train/. The leaf modules are ``calls`` (what a model's
turn holds), ``formats`` (how a chat template spells tool calls), ``tools`` (running them) and
``environment`` (what answers the model between turns).
"""
