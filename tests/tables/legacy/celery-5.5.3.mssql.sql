CREATE SEQUENCE task_id_sequence
;
CREATE TABLE celery_taskmeta (
	id INTEGER NOT NULL, 
	task_id VARCHAR(155) NULL, 
	status VARCHAR(50) NULL, 
	result VARBINARY(max) NULL, 
	date_done DATETIME NULL, 
	traceback VARCHAR(max) NULL, 
	name VARCHAR(155) NULL, 
	args VARBINARY(max) NULL, 
	kwargs VARBINARY(max) NULL, 
	worker VARCHAR(155) NULL, 
	retries INTEGER NULL, 
	queue VARCHAR(155) NULL, 
	PRIMARY KEY (id), 
	UNIQUE (task_id)
)
;
CREATE SEQUENCE taskset_id_sequence
;
CREATE TABLE celery_tasksetmeta (
	id INTEGER NOT NULL, 
	taskset_id VARCHAR(155) NULL, 
	result VARBINARY(max) NULL, 
	date_done DATETIME NULL, 
	PRIMARY KEY (id), 
	UNIQUE (taskset_id)
)
;
