"""Start the astapp web app: `python app.py` → http://127.0.0.1:7860 (see README for settings)."""

from astapp.ui.app import main

if __name__ == "__main__":
    main()
