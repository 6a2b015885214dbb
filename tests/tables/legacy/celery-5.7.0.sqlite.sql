CREATE TABLE celery_taskmeta (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	task_id VARCHAR(155), 
	status VARCHAR(50), 
	result BLOB, 
	date_done DATETIME, 
	traceback TEXT, 
	children BLOB, 
	name VARCHAR(155), 
	args BLOB, 
	kwargs BLOB, 
	worker VARCHAR(155), 
	retries INTEGER, 
	queue VARCHAR(155), 
	stamps BLOB, 
	UNIQUE (task_id)
);
CREATE INDEX ix_celery_taskmeta_date_done ON celery_taskmeta (date_done);
CREATE TABLE celery_tasksetmeta (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	taskset_id VARCHAR(155), 
	result BLOB, 
	date_done DATETIME, 
	UNIQUE (taskset_id)
);
CREATE INDEX ix_celery_tasksetmeta_date_done ON celery_tasksetmeta (date_done);
