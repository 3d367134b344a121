"""Insight over the stream of 12345 orders: hot issues (热点问题) and early warning
(话务舆情预警).

Pure Python, no database: ``hot`` clusters messages about the same problem at the same place
(or for the same group) and scores each cluster; ``spikes`` watches per-key volumes
(category x town) against their own seasonal baseline; ``extreme`` flags texts that signal
danger to life or public safety, or a group incident, from an editable word list.
"""
