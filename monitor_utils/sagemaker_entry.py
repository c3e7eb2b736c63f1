"""Script SageMaker training and processing jobs run: puts the package on sys.path and runs one retraining step."""

if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from monitor_utils.steps import main

    sys.exit(main(sys.argv[1:]))
