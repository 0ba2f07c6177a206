"""The built-in model plugins, one file each, written exactly as a third party would."""
