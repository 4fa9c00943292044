"""The window's parts: image panes and their layouts (grid, flicker, split), the loupe, the
control panel, plots, the numbers table, the decode status line and the message banner."""
