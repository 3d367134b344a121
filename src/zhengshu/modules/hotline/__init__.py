"""12345 work orders (工单): intake from every channel, dispatch to the city / town /
village tier, closed-loop handling with time limits, callbacks and satisfaction,
supervision, merging, emergency transfer to 110 / 119 / 120. Built on ``casework``.
"""
