"""The main window and what belongs to it: menus, demo mode, dialogs, remembered settings, export."""
