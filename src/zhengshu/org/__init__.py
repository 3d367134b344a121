"""The organisation: who the city is made of, and who may do what where.

The jurisdiction tree (city > town / street / park > village / community), departments at
city level and offices inside towns, people and their roles, login (web sessions and
bearer tokens) and partner systems' API tokens. ``org`` imports only ``kernel`` (and the
shared web shell for its pages).
"""
