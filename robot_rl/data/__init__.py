"""Datasets: LeRobot v3 writer/reader (lerobot.py), live frames on the dataset's grid (frame_grid.py), a background
episode writer (episode_writer.py), scripted sim demonstrations (collect_sim.py); no ROS imports. Import the modules
themselves: this package loads none of them, so a light one does not pull in OpenCV."""
